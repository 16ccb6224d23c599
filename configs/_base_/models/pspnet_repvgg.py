# PSPNet with a dilated RepVGG backbone (output stride 8), as in the RepVGG paper, section 4.3.
# Inherits MMSegmentation's PSPNet and swaps the backbone; concrete configs set arch and channels.
_base_ = ['mmseg::_base_/models/pspnet_r50-d8.py']
custom_imports = dict(imports=['repseg'], allow_failed_imports=False)

norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    pretrained=None,  # else EncoderDecoder hands the base's ResNet `pretrained` URL to the backbone as its init_cfg
    backbone=dict(
        _delete_=True,
        type='RepVGG',
        arch='B2',
        out_indices=(3, 4),
        strides=(2, 2, 2, 1, 1),
        dilations=(1, 1, 1, 2, 4),
        fast=False,
        norm_cfg=norm_cfg,
        norm_eval=False),
    # stage 4 feeds the pyramid pooling head, stage 3 the auxiliary FCN head (loss weight 0.4 in the base)
    decode_head=dict(in_channels=2560, in_index=1, channels=512, dropout_ratio=0.1, norm_cfg=norm_cfg,
                     align_corners=True, loss_decode=dict(avg_non_ignore=False)),
    auxiliary_head=dict(in_channels=640, in_index=0, channels=256, norm_cfg=norm_cfg, align_corners=True,
                        loss_decode=dict(avg_non_ignore=False)))
# avg_non_ignore=False (MMSegmentation's default, as in its ResNet baselines): the loss is the mean over all pixels,
# ignored ones counting as zero. Every process then averages over the same number of pixels, so N processes x B images
# (SyncBN, DDP's averaged gradients) train as one process x N*B images, to float rounding (tests/test_distributed.py).
