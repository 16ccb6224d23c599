# The CPU schedule of the configs/camvid/ models: ./poly_400i_cpu.py run to 500 iterations, validated every 250, sized
# for about 20 minutes on a 2-core CPU (measured: 21 min for PSPNet-RepVGG-A0, 24 min for PSPNet-R18-D8, see their
# headers).
_base_ = ['./poly_400i_cpu.py']
max_iters = 500
val_interval = 250  # a learning curve in the log; each CamVid validation is 101 whole images
optim_wrapper = dict(clip_grad=None)
# re-set from this max_iters (the base's values were fixed at 400 when it was parsed)
param_scheduler = [dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end=max_iters + 1, by_epoch=False)]
train_cfg = dict(max_iters=max_iters, val_interval=val_interval)
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(interval=25),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # a checkpoint at every validation (one kept) so that an interrupted run can --resume
    checkpoint=dict(interval=val_interval),
    sampler_seed=dict(type='DistSamplerSeedHook'))
