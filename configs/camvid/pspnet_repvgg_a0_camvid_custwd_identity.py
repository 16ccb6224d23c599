# Remedy (b') of docs/quantization.md: remedy (b), the official custom L2, with the identity branch's BN scale added
# to the penalized centre tap (identity=True: the official term leaves the identity branch out, as discussed in
# https://github.com/DingXiaoH/RepVGG/issues/99), so that the term sees the fused diagonal the identity branch sets.
# Everything else is pspnet_repvgg_a0_camvid_custwd.py.
#   python tools/train.py configs/camvid/pspnet_repvgg_a0_camvid_custwd_identity.py \
#       --work-dir work_dirs/camvid/pspnet_repvgg_a0_camvid_custwd_identity
_base_ = ['./pspnet_repvgg_a0_camvid_custwd.py']
optim_wrapper = dict(paramwise_cfg=dict(custom_l2=dict(identity=True)))
