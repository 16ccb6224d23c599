# The RepVGG paper's segmentation recipe (section 4.3): SGD, lr 0.01, momentum 0.9, weight decay 1e-4, poly decay with
# power 0.9 down to 0, 40 epochs of the 2975 Cityscapes fine training images at a total batch of 16:
# 40 * 2975 / 16 = 7437.5, i.e. 7440 iterations.
#
# Batch split: 8 GPUs x 2 images (train_dataloader.batch_size=2, `torchrun --nproc_per_node 8 tools/train.py ...`).
# Fewer GPUs: keep the total batch at 16, e.g. 4 GPUs x 4 images (--cfg-options train_dataloader.batch_size=4) or
# 2 GPUs x 8. If memory forbids that, halve the total batch, halve the lr and double max_iters and the poly `end`
# (linear scaling) by hand, e.g. 8 GPUs x 1 image: --cfg-options train_dataloader.batch_size=1
# optim_wrapper.optimizer.lr=0.005 train_cfg.max_iters=14880 param_scheduler.0.end=14881
# (tools/train.py does not scale the lr itself; auto_scale_lr below only records the base batch size of 16).
max_iters = 7440
val_interval = 744  # every 4 epochs

optimizer = dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=1e-4)
optim_wrapper = dict(type='OptimWrapper', optimizer=optimizer, clip_grad=None)
# mmengine's PolyLR decays over end - begin - 1 steps; end=max_iters + 1 gives the paper's lr * (1 - t / max_iters)^0.9
param_scheduler = [dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end=max_iters + 1, by_epoch=False)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=val_interval)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='AtomicCheckpointHook', by_epoch=False, interval=val_interval, max_keep_ckpts=3,
                    save_best='mIoU', rule='greater'),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook'))
auto_scale_lr = dict(enable=False, base_batch_size=16)
