# The real-time models' CPU schedule on CamVid (configs/camvid/dualrepvgg-*, ddrnet-23-slim_camvid.py,
# pidnet-s_camvid.py): MMSegmentation's DDRNet/PIDNet recipe (SGD lr 0.01, momentum 0.9, weight decay 5e-4, poly 0.9)
# over 2000 iterations, validated and checkpointed at 1000 and 2000.
max_iters = 2000
val_interval = 1000
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=0.0005),
                     clip_grad=None)
# mmengine's PolyLR decays over end - begin - 1 steps; end=max_iters + 1 gives lr * (1 - t / max_iters)^0.9
param_scheduler = [dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end=max_iters + 1, by_epoch=False)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=val_interval)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='AtomicCheckpointHook', by_epoch=False, interval=val_interval, max_keep_ckpts=1),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook'))
randomness = dict(seed=0)
