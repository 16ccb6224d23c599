# PSPNet-RepVGG-B2-fast: pspnet_repvgg_b2.py in the paper's "fast" variant, where only the last 5 blocks of the
# backbone are dilated (the last 4 of stage 3 by 2, the one of stage 4 by 4; the rest of stage 3 is not dilated).
_base_ = ['./pspnet_repvgg_b2.py']
model = dict(backbone=dict(fast=True))
