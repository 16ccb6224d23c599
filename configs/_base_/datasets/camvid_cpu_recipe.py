# The CPU training recipe shared by the configs/camvid/ models: CamVid data (./camvid.py) and a from-scratch poly
# schedule sized for about 20 minutes on a 2-core CPU (measured: 21 min for PSPNet-RepVGG-A0, 24 min for
# PSPNet-R18-D8, see their headers). Same shape as the RepVGG paper's recipe (SGD, momentum 0.9, weight decay 1e-4,
# poly power 0.9 to 0), with a higher lr and few iterations because no ImageNet weights are used.
_base_ = ['./camvid.py', 'mmseg::_base_/default_runtime.py']

max_iters = 500
val_interval = 250  # a learning curve in the log; each validation is 101 whole images
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.05, momentum=0.9, weight_decay=1e-4),
                     clip_grad=None)
# mmengine's PolyLR decays over end - begin - 1 steps; end=max_iters + 1 gives lr * (1 - t / max_iters)^0.9
param_scheduler = [dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end=max_iters + 1, by_epoch=False)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=val_interval)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=25, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # a checkpoint at every validation (one kept) so that an interrupted run can --resume
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=val_interval, max_keep_ckpts=1),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook'))
log_processor = dict(by_epoch=False)
randomness = dict(seed=0)
