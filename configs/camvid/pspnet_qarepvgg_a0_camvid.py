# Remedy (c) of docs/quantization.md: PSPNet with a QARepVGG-A0 backbone (Chu et al.: ReLU(BN_post(BN(conv3x3 x) +
# conv1x1 x + x))) on CamVid; it re-parameterizes into the same plain 3x3 stack as RepVGG, so every deploy tool
# works unchanged. Everything else is pspnet_repvgg_a0_camvid.py (same recipe, seed and schedule).
#   python tools/train.py configs/camvid/pspnet_qarepvgg_a0_camvid.py \
#       --work-dir work_dirs/camvid/pspnet_qarepvgg_a0_camvid
_base_ = ['./pspnet_repvgg_a0_camvid.py']
model = dict(backbone=dict(block='qarepvgg'))
