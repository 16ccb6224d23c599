"""Exactness of the re-parameterization: train form == deploy form (eval mode), whole models included."""
import copy

import pytest
import torch
from conftest import block_layout, published_layout, randomize_bn, slim_arch
from mmseg.registry import MODELS

import repseg
from repseg.models.backbones import ARCH_SETTINGS, QARepVGGBlock, ReparamBlock, RepVGGBlock

PSP = dict(strides=(2, 2, 2, 1, 1), dilations=(1, 1, 1, 2, 4))
LAYOUTS = {'os32': {}, 'os8': PSP, 'os8-fast': dict(fast=True, **PSP)}
REL_TOL = 1e-4  # max |train - deploy| <= REL_TOL * max |train| per stage output, fp32
#: what no deploy-form backbone holds: train-time branches, and QARepVGG's BN after the branch sum
BRANCH_PARTS = ('rbr_dense', 'rbr_1x1', 'rbr_identity', '.bn.')


def max_rel_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / a.abs().max()).item()


def build(arch, **kwargs):
    return MODELS.build(dict(type='RepVGG', arch=arch, out_indices=(0, 1, 2, 3, 4), **kwargs))


def assert_converts_exactly(model, x, what):
    randomize_bn(model).eval()
    with torch.no_grad():
        ref = model(x)
        repseg.reparameterize(model)
        out = model(x)
    assert model.deploy
    assert not any(k for k in model.state_dict() if any(part in k for part in BRANCH_PARTS))
    for stage, (r, o) in enumerate(zip(ref, out)):
        assert r.shape == o.shape
        assert r.abs().max() > 0
        assert max_rel_diff(r, o) <= REL_TOL, f'{what} stage {stage}: {max_rel_diff(r, o):.2e}'


@pytest.mark.parametrize('block', ['repvgg', 'qarepvgg'])
@pytest.mark.parametrize('layout', sorted(LAYOUTS))
@pytest.mark.parametrize('arch', sorted(ARCH_SETTINGS))
def test_every_arch_converts_exactly(arch, layout, block):
    """Every arch's blocks (depth, groups, SE / post-SE, identities) in every layout, RepVGG and QARepVGG blocks, at
    a quarter of its widths (conftest.slim_arch); the full widths: the meta-device test and the full-size
    representatives."""
    torch.manual_seed(0)
    model = build(slim_arch(arch), block=block, **LAYOUTS[layout])
    assert block_layout(model) == published_layout(arch, **LAYOUTS[layout])  # the published arch's blocks
    expected = {'repvgg': RepVGGBlock, 'qarepvgg': QARepVGGBlock}[block]
    assert all(type(m) is expected for m in model.modules() if isinstance(m, ReparamBlock))
    assert_converts_exactly(model, torch.randn(1, 3, 48, 80), f'{arch} {layout} {block}')  # non-square (SE)


def conv_settings(conv):
    return conv.stride, conv.dilation, conv.padding, conv.groups, conv.in_channels, conv.out_channels


@pytest.mark.parametrize('arch', sorted(ARCH_SETTINGS))
def test_every_full_size_arch_converts_on_the_meta_device(arch):
    """The full widths without weights: every fused conv takes its block's 3x3 settings, and the converted state
    dict is a deploy=True backbone's, key for key and shape for shape."""
    with torch.device('meta'):
        model = build(arch, **LAYOUTS['os8-fast'])  # strides 2 and 1, dilations 1, 2 and 4
        assert block_layout(model) == published_layout(arch, **LAYOUTS['os8-fast'])  # what the slim archs copy
        blocks = [m for m in model.modules() if isinstance(m, RepVGGBlock)]
        dense = [conv_settings(b.rbr_dense.conv) for b in blocks]
        assert repseg.reparameterize(model) is model
        built = build(arch, deploy=True, **LAYOUTS['os8-fast'])
    assert model.deploy and len(blocks) == 1 + sum(ARCH_SETTINGS[arch]['num_blocks'])
    assert [conv_settings(b.rbr_reparam) for b in blocks] == dense
    assert all(b.rbr_reparam.bias is not None for b in blocks)
    assert {k: v.shape for k, v in model.state_dict().items()} == {k: v.shape for k, v in built.state_dict().items()}


def test_full_size_arch_converts_exactly():
    """One published arch at its full widths, numerically: the deepest, with SE, at output stride 8."""
    torch.manual_seed(0)
    model = build('D2se', **PSP)
    assert_converts_exactly(model, torch.randn(1, 3, 48, 80), 'D2se os8')


def test_fusion_detects_a_wrong_kernel():
    """Guard against a test that cannot fail: a perturbed fused kernel must exceed the tolerance."""
    torch.manual_seed(0)
    model = randomize_bn(MODELS.build(dict(type='RepVGG', arch='A0', out_indices=(4,)))).eval()
    x = torch.randn(1, 3, 48, 80)
    with torch.no_grad():
        ref = model(x)[0]
        repseg.reparameterize(model)
        model.stage2[3].rbr_reparam.weight[:, :, 1, 1] += 1e-2  # e.g. an identity tap lost or doubled
        assert max_rel_diff(ref, model(x)[0]) > REL_TOL


def build_pspnet(norm_type: str = 'BN'):
    norm_cfg = dict(type=norm_type, requires_grad=True)
    cfg = dict(
        type='EncoderDecoder',
        data_preprocessor=dict(type='SegDataPreProcessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
                               bgr_to_rgb=True, pad_val=0, seg_pad_val=255),
        backbone=dict(type='RepVGG', arch='A0', out_indices=(3, 4), norm_cfg=norm_cfg, **PSP),
        decode_head=dict(type='PSPHead', in_channels=1280, in_index=1, channels=64, pool_scales=(1, 2, 3, 6),
                         dropout_ratio=0.1, num_classes=19, norm_cfg=norm_cfg, align_corners=False),
        auxiliary_head=dict(type='FCNHead', in_channels=192, in_index=0, channels=32, num_convs=1, concat_input=False,
                            dropout_ratio=0.1, num_classes=19, norm_cfg=norm_cfg, align_corners=False,
                            loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=0.4)),
        train_cfg=dict(), test_cfg=dict(mode='whole'))
    return MODELS.build(cfg)


def test_encoder_decoder_heads_bit_identical_and_logits_equal():
    torch.manual_seed(0)
    model = randomize_bn(build_pspnet()).eval()
    before = copy.deepcopy(model.state_dict())
    x = torch.randn(1, 3, 65, 97)
    with torch.no_grad():
        ref = model(x, mode='tensor')
        assert repseg.reparameterize(model) is model
        out = model(x, mode='tensor')
    after = model.state_dict()
    heads = [k for k in before if not k.startswith('backbone.')]
    assert heads and all(torch.equal(before[k], after[k]) for k in heads)
    assert all(k.startswith('backbone.') for k in set(before) ^ set(after))
    assert max_rel_diff(ref, out) <= REL_TOL
    # second call: no-op
    snapshot = copy.deepcopy(model.state_dict())
    repseg.reparameterize(model)
    assert all(torch.equal(snapshot[k], v) for k, v in model.state_dict().items())


def test_syncbn_model_in_train_mode_converts_with_running_stats():
    """SyncBN-built (no process group needed for conversion) and called in train mode: uses running statistics."""
    torch.manual_seed(0)
    model = randomize_bn(build_pspnet('SyncBN'))
    assert any(isinstance(m, torch.nn.SyncBatchNorm) for m in model.backbone.modules())
    reference = copy.deepcopy(model)
    for m in reference.modules():  # SyncBN in eval mode needs no process group
        if isinstance(m, torch.nn.SyncBatchNorm):
            m.eval()
    model.train()
    repseg.reparameterize(model)
    assert model.backbone.deploy and model.training
    assert not any(isinstance(m, torch.nn.SyncBatchNorm) for m in model.backbone.modules())
    x = torch.randn(1, 3, 49, 65)
    with torch.no_grad():
        ref = reference.backbone.eval()(x)
        out = model.backbone.eval()(x)
    for r, o in zip(ref, out):
        assert max_rel_diff(r, o) <= REL_TOL


def test_block_equivalent_kernel_is_differentiable_and_grouped_identity():
    block = RepVGGBlock(8, 8, stride=1, dilation=3, groups=4)
    randomize_bn(block).eval()
    kernel, bias = block.get_equivalent_kernel_bias()
    assert kernel.shape == (8, 2, 3, 3) and bias.shape == (8,)
    assert kernel.requires_grad
    x = torch.randn(2, 8, 11, 13)
    with torch.no_grad():
        ref = block(x)
        block.switch_to_deploy()
        assert block.rbr_reparam.dilation == (3, 3) and block.rbr_reparam.padding == (3, 3)
        assert max_rel_diff(ref, block(x)) <= REL_TOL
