# A from-scratch poly schedule for a CPU, as configs/pspnet_repvgg_a0_sample.py runs it: 400 iterations, one validation
# and one checkpoint at the end. Same shape as the RepVGG paper's recipe (./poly_40e_cityscapes.py: SGD, momentum 0.9,
# weight decay 1e-4, poly power 0.9 to 0), with a higher lr and few iterations because no ImageNet weights are used.
# mmengine fixes every value derived from max_iters when it parses this file: a child that changes max_iters must
# re-set param_scheduler, train_cfg and the checkpoint interval (as ./poly_500i_cpu.py does).
max_iters = 400
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.05, momentum=0.9, weight_decay=1e-4))
# mmengine's PolyLR decays over end - begin - 1 steps; end=max_iters + 1 gives lr * (1 - t / max_iters)^0.9
param_scheduler = [dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end=max_iters + 1, by_epoch=False)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    checkpoint=dict(type='AtomicCheckpointHook', by_epoch=False, interval=max_iters, max_keep_ckpts=1),
    visualization=dict(type='SegVisualizationHook'))
randomness = dict(seed=0)
