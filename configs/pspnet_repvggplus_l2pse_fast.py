# PSPNet-RepVGGplus-L2pse-fast: pspnet_repvggplus_l2pse.py in the paper's "fast" variant, where only the last 5 blocks
# of the backbone are dilated (the last 4 of stage 3 by 2, the one of stage 4 by 4; the rest of stage 3 is not dilated).
_base_ = ['./pspnet_repvggplus_l2pse.py']
model = dict(backbone=dict(fast=True))
