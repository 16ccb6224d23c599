# Remedy (b) of docs/quantization.md: PSPNet-RepVGG-A0 on CamVid trained with the official custom L2 (`--custwd`):
# loss += weight_decay * 0.5 * custom_l2(model), ordinary weight decay off for the kernels it covers
# (repseg/models/custom_l2.py). Everything else is pspnet_repvgg_a0_camvid.py (same recipe, seed and schedule).
#   python tools/train.py configs/camvid/pspnet_repvgg_a0_camvid_custwd.py \
#       --work-dir work_dirs/camvid/pspnet_repvgg_a0_camvid_custwd
_base_ = ['./pspnet_repvgg_a0_camvid.py']
optim_wrapper = dict(constructor='CustomL2OptimWrapperConstructor')
