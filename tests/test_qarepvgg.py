"""QARepVGG blocks: exact re-parameterization for every arch and layout, the deploy tools unchanged, and the
function-preserving start from standard RepVGG weights (official, mmpretrain and timm files)."""
import copy

import pytest
import torch
from conftest import SAMPLE_CONFIG, block_layout, published_layout, randomize_bn
from mmengine.config import Config
from mmseg.registry import MODELS
from test_import_pretrained import as_mmpretrain, as_official, as_timm

import repseg
import repseg.checkpoint.qarepvgg_init as qarepvgg_init
from repseg.apis import sync_bn_to_bn
from repseg.checkpoint.qarepvgg_init import MIN_IDENTITY_SCALE, qarepvgg_block_tensors
from repseg.deploy import convert_to_deploy
from repseg.models.backbones import ARCH_SETTINGS, QARepVGGBlock, ReparamBlock, RepVGGBlock

PSP = dict(strides=(2, 2, 2, 1, 1), dilations=(1, 1, 1, 2, 4))
LAYOUTS = {'os32': {}, 'os8': PSP, 'os8-fast': dict(fast=True, **PSP)}
ALL_STAGES = (0, 1, 2, 3, 4)
REL_TOL = 1e-4  # max |a - b| <= REL_TOL * max |a| per stage output, fp32
# small custom archs: groups (g2 at layer 2, g4 at layer 4) with SE before the ReLU, and RepVGGplus's post-SE
SMALL_G_SE = dict(num_blocks=(2, 2, 2, 1), width_factor=(0.5, 0.5, 0.5, 0.5), use_se=True,
                  group_layer_map={2: 2, 4: 4})
SMALL_POST_SE = dict(num_blocks=(2, 2, 2, 1), width_factor=(0.5, 0.5, 0.5, 0.5), use_post_se=True)


def max_rel_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / a.abs().max()).item()


def assert_stages_close(ref, out, what):
    assert len(ref) == len(out)
    for stage, (r, o) in enumerate(zip(ref, out)):
        assert r.shape == o.shape and r.abs().max() > 0
        assert max_rel_diff(r, o) <= REL_TOL, f'{what} stage {stage}: {max_rel_diff(r, o):.2e}'


def build(arch='A0', block='qarepvgg', **kwargs):
    return MODELS.build(dict(dict(type='RepVGG', arch=arch, block=block, out_indices=ALL_STAGES), **kwargs))


def run(model, x):
    with torch.no_grad():
        return model.eval()(x)


# --- the block ----------------------------------------------------------------------------------------------------
def test_block_layout_identity_without_bn_1x1_without_bn_one_post_bn():
    block = QARepVGGBlock(16, 16)
    assert isinstance(block, ReparamBlock) and not isinstance(block, RepVGGBlock)  # siblings, one protocol
    assert isinstance(block.rbr_identity, torch.nn.Identity)
    assert sorted(k for k in block.state_dict() if not k.endswith('num_batches_tracked')) == [
        'bn.bias', 'bn.running_mean', 'bn.running_var', 'bn.weight', 'rbr_1x1.weight', 'rbr_dense.bn.bias',
        'rbr_dense.bn.running_mean', 'rbr_dense.bn.running_var', 'rbr_dense.bn.weight', 'rbr_dense.conv.weight']
    assert QARepVGGBlock(16, 32).rbr_identity is None  # channels change
    assert QARepVGGBlock(16, 16, stride=2).rbr_identity is None  # stride changes


@pytest.mark.parametrize('kwargs', [dict(), dict(groups=4, dilation=3, use_se=True), dict(use_post_se=True),
                                    dict(stride=2, groups=2, use_se=True, use_post_se=True)])
def test_deploy_form_and_keys_are_repvgg_blocks(kwargs):
    cout = 32 if kwargs.get('stride', 1) == 1 else 64
    block = randomize_bn(QARepVGGBlock(32, cout, **kwargs)).eval()
    x = torch.randn(2, 32, 11, 13)
    ref = run(block, x)
    repseg.reparameterize(block)
    assert block.deploy and not hasattr(block, 'bn') and not hasattr(block, 'rbr_1x1')
    assert max_rel_diff(ref, run(block, x)) <= REL_TOL
    plain = RepVGGBlock(32, cout, deploy=True, **kwargs)
    assert {k: v.shape for k, v in block.state_dict().items()} == {k: v.shape for k, v in plain.state_dict().items()}
    assert QARepVGGBlock(32, cout, deploy=True, **kwargs).state_dict().keys() == plain.state_dict().keys()


def test_train_mode_normalizes_the_sum_with_one_bn():
    """In train mode BN_post sees batch statistics of the sum: its output is normalized per channel."""
    block = QARepVGGBlock(8, 8)
    block.nonlinearity = torch.nn.Identity()  # look at BN_post's output directly
    out = block.train()(torch.randn(4, 8, 9, 9) * 3 + 1)
    assert torch.allclose(out.mean(dim=(0, 2, 3)), torch.zeros(8), atol=1e-5)
    assert torch.allclose(out.var(dim=(0, 2, 3), unbiased=False), torch.ones(8), atol=1e-3)


# --- every arch, output stride 32 and 8, fast or not ---------------------------------------------------------------
def assert_converts_exactly(model, x, what):
    randomize_bn(model).eval()
    assert all(isinstance(m, QARepVGGBlock) for m in model.modules() if isinstance(m, ReparamBlock))
    ref = run(model, x)
    repseg.reparameterize(model)
    assert model.deploy
    assert not any(('rbr_dense' in k or 'rbr_1x1' in k or '.bn.' in k) for k in model.state_dict())
    assert_stages_close(ref, run(model, x), what)


def conv_settings(conv):
    return conv.stride, conv.dilation, conv.padding, conv.groups, conv.in_channels, conv.out_channels


@pytest.mark.parametrize('arch', sorted(ARCH_SETTINGS))
def test_every_full_size_arch_converts_on_the_meta_device(arch):
    """The full widths without weights: BN_post and the bare 1x1 are gone, every fused conv takes its block's 3x3
    settings, and the converted state dict is that of a deploy=True QARepVGG backbone and of a deploy=True RepVGG
    backbone, key for key and shape for shape."""
    with torch.device('meta'):
        model = build(arch, **LAYOUTS['os8-fast'])  # strides 2 and 1, dilations 1, 2 and 4
        assert block_layout(model) == published_layout(arch, **LAYOUTS['os8-fast'])  # what the slim archs copy
        blocks = [m for m in model.modules() if isinstance(m, ReparamBlock)]
        assert blocks and all(isinstance(b, QARepVGGBlock) for b in blocks)
        dense = [conv_settings(b.rbr_dense.conv) for b in blocks]
        repseg.reparameterize(model)
        built = {block: build(arch, block=block, deploy=True, **LAYOUTS['os8-fast'])
                 for block in ('qarepvgg', 'repvgg')}
    assert model.deploy and [conv_settings(b.rbr_reparam) for b in blocks] == dense
    assert not any(('rbr_dense' in k or 'rbr_1x1' in k or '.bn.' in k) for k in model.state_dict())
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    for block, other in built.items():
        assert shapes == {k: v.shape for k, v in other.state_dict().items()}, block


def test_full_size_arch_converts_exactly():
    """One published arch at its full widths, numerically: the widest, grouped, at output stride 8 (fast)."""
    torch.manual_seed(0)
    assert_converts_exactly(build('B3g4', **LAYOUTS['os8-fast']), torch.randn(1, 3, 64, 64), 'B3g4 os8-fast')


def test_a_wrong_fused_kernel_is_caught():
    """Guard against a test that cannot fail: BN_post left out of one block's fusion must exceed the tolerance."""
    torch.manual_seed(0)
    model = randomize_bn(build('A0', out_indices=(4,))).eval()
    x = torch.randn(1, 3, 64, 64)
    ref = run(model, x)[0]
    model.stage2[3].bn.weight.data.mul_(1.01)
    repseg.reparameterize(model)
    model.stage2[3].rbr_reparam.weight.data.div_(1.01)
    assert max_rel_diff(ref, run(model, x)[0]) > REL_TOL


def test_unknown_block_is_a_one_line_error():
    with pytest.raises(ValueError, match=r"block='qa': expected one of 'repvgg', 'qarepvgg'"):
        build(block='qa')


def psp_config(block='qarepvgg'):
    norm_cfg = dict(type='BN', requires_grad=True)
    return dict(
        type='EncoderDecoder',
        data_preprocessor=dict(type='SegDataPreProcessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
                               bgr_to_rgb=True, pad_val=0, seg_pad_val=255),
        backbone=dict(type='RepVGG', arch='A0', out_indices=(3, 4), norm_cfg=norm_cfg, block=block, **PSP),
        decode_head=dict(type='PSPHead', in_channels=1280, in_index=1, channels=32, pool_scales=(1, 2, 3, 6),
                         dropout_ratio=0.1, num_classes=19, norm_cfg=norm_cfg, align_corners=False),
        auxiliary_head=dict(type='FCNHead', in_channels=192, in_index=0, channels=16, num_convs=1, concat_input=False,
                            dropout_ratio=0.1, num_classes=19, norm_cfg=norm_cfg, align_corners=False),
        train_cfg=dict(), test_cfg=dict(mode='whole'))


def test_whole_segmentor_reparameterizes_with_heads_bit_identical():
    torch.manual_seed(0)
    model = randomize_bn(MODELS.build(psp_config())).eval()
    before = copy.deepcopy(model.state_dict())
    x = torch.randn(1, 3, 65, 97)
    with torch.no_grad():
        ref = model(x, mode='tensor')
        repseg.reparameterize(model)
        out = model(x, mode='tensor')
    assert model.backbone.deploy
    after = model.state_dict()
    heads = [k for k in before if not k.startswith('backbone.')]
    assert heads and all(torch.equal(before[k], after[k]) for k in heads)
    assert max_rel_diff(ref, out) <= REL_TOL


def test_convert_to_deploy_tool_works_unchanged(tmp_path):
    """The deploy converter (proof, deploy config, reload) on a QARepVGG PSPNet from a config file."""
    config = tmp_path / 'pspnet_qarepvgg_a0.py'
    config.write_text(f"_base_ = ['{SAMPLE_CONFIG}']\nmodel = dict(backbone=dict(block='qarepvgg'))\n")
    torch.manual_seed(0)
    model = randomize_bn(MODELS.build(sync_bn_to_bn(Config.fromfile(str(config)).model.to_dict())))
    assert isinstance(model.backbone.stage1[0], QARepVGGBlock)
    torch.save(dict(meta=dict(iter=1), state_dict=model.state_dict()), tmp_path / 'iter_1.pth')
    result = convert_to_deploy(config, tmp_path / 'iter_1.pth', tmp_path / 'deploy', shape=(64, 96), log=lambda s: None)
    assert all(d.passed for d in result.diffs) and result.diffs[0].max_rel <= REL_TOL
    deploy_cfg = Config.fromfile(str(result.config))
    assert deploy_cfg.model.backbone.block == 'qarepvgg' and deploy_cfg.model.backbone.deploy is True


# --- the function-preserving start from standard RepVGG weights ----------------------------------------------------
LAYOUT_FORMATS = {'official': as_official, 'mmpretrain': as_mmpretrain, 'timm': as_timm}


def standard_file(arch, path, **kwargs):
    """A standard RepVGG train-form backbone with random BN statistics (identity BNs included), in official keys."""
    torch.manual_seed(0)
    torch.save({'state_dict': randomize_bn(build(arch, block='repvgg', **kwargs)).state_dict()}, path)
    return path


def loaded(arch, path, **kwargs):
    model = build(arch, init_cfg=dict(type='Pretrained', checkpoint=str(path)), **kwargs)
    model.init_weights()
    return model.eval()


@pytest.fixture(scope='module')
def a0_reference():
    """A standard A0 with random BN statistics, and its stage outputs in each layout (same weights)."""
    torch.manual_seed(0)
    state = randomize_bn(build('A0', block='repvgg')).state_dict()
    x = torch.randn(1, 3, 64, 80)
    refs = {}
    for layout in ('os32', 'os8'):
        model = build('A0', block='repvgg', **LAYOUTS[layout])
        model.load_state_dict(state)
        refs[layout] = run(model, x)
    return state, x, refs


@pytest.mark.parametrize('fmt, layout', [('official', 'os32'), ('official', 'os8'), ('mmpretrain', 'os8'),
                                         ('timm', 'os32')])
def test_standard_weights_start_qarepvgg_with_the_same_function(a0_reference, tmp_path, fmt, layout):
    state, x, refs = a0_reference
    path = tmp_path / f'RepVGG-A0-{fmt}.pth'
    torch.save({'state_dict': LAYOUT_FORMATS[fmt](state)}, path)
    model = loaded('A0', path, **LAYOUTS[layout])
    assert all(isinstance(m, QARepVGGBlock) for m in model.modules() if isinstance(m, ReparamBlock))
    assert_stages_close(refs[layout], run(model, x), f'{fmt} {layout} QARepVGG start')
    # and its deploy form, what the deploy tools will write
    assert_stages_close(refs[layout], run(repseg.reparameterize(model), x), f'{fmt} {layout} QARepVGG, deployed')


@pytest.mark.parametrize('arch', [SMALL_G_SE, SMALL_POST_SE], ids=['groups-se', 'post-se'])
def test_grouped_se_and_post_se_blocks_start_with_the_same_function(tmp_path, arch):
    path = standard_file(arch, tmp_path / 'small.pth', **PSP)
    x = torch.randn(1, 3, 64, 80)
    ref = run(loaded(arch, path, block='repvgg', **PSP), x)
    assert_stages_close(ref, run(loaded(arch, path, **PSP), x), 'small QARepVGG start')


def test_deploy_form_qarepvgg_backbone_takes_standard_train_weights(a0_reference, tmp_path):
    state, x, refs = a0_reference
    torch.save(state, tmp_path / 'a0.pth')
    assert_stages_close(refs['os32'], run(loaded('A0', tmp_path / 'a0.pth', deploy=True), x),
                        'deploy-form QARepVGG from a train file')


def test_a_wrong_conversion_is_caught(a0_reference, tmp_path, monkeypatch):
    """Guard: ignoring the identity BN's scale (sp = 1 everywhere) must exceed the tolerance."""
    state, x, refs = a0_reference
    torch.save(state, tmp_path / 'a0.pth')

    def no_identity_scale(params, eps, min_scale=MIN_IDENTITY_SCALE):
        params = dict(params)
        for leaf, value in (('weight', 1.0), ('bias', 0.0), ('running_mean', 0.0), ('running_var', 1.0 - eps)):
            if f'rbr_identity.{leaf}' in params:
                params[f'rbr_identity.{leaf}'] = torch.full_like(params[f'rbr_identity.{leaf}'], value)
        return qarepvgg_block_tensors(params, eps, min_scale)

    monkeypatch.setattr(qarepvgg_init, 'qarepvgg_block_tensors', no_identity_scale)
    assert max_rel_diff(refs['os32'][4], run(loaded('A0', tmp_path / 'a0.pth'), x)[4]) > REL_TOL


def test_dead_identity_channel_is_clamped_and_reported(a0_reference, tmp_path, monkeypatch):
    """Identity BN scale 0 cannot become BN_post's scale: clamped to MIN_IDENTITY_SCALE, every other tap exact."""
    standard = randomize_bn(RepVGGBlock(8, 8, groups=2)).eval()
    standard.rbr_identity.weight.data[3] = 0.0
    tensors, clamped = qarepvgg_block_tensors(standard.state_dict(), standard.rbr_dense.bn.eps)
    assert clamped == 1
    block = QARepVGGBlock(8, 8, groups=2)
    block.load_state_dict(tensors, strict=True)
    with torch.no_grad():
        k_ref, b_ref = standard.get_equivalent_kernel_bias()
        k_qa, b_qa = block.eval().get_equivalent_kernel_bias()
    diff = (k_qa - k_ref).abs()
    assert diff[3, 3 % 4, 1, 1].item() == pytest.approx(MIN_IDENTITY_SCALE, rel=1e-3)  # the dead identity tap
    diff[3, 3 % 4, 1, 1] = 0
    assert diff.max() <= 1e-6 * k_ref.abs().max() and torch.allclose(b_qa, b_ref, rtol=1e-5, atol=1e-6)

    # through the loader: logged with the block's name
    messages = []
    monkeypatch.setattr(qarepvgg_init, 'print_log', lambda msg, **kw: messages.append(msg))
    state = copy.deepcopy(a0_reference[0])
    state['stage2.1.rbr_identity.weight'][5] = 0.0
    torch.save(state, tmp_path / 'dead.pth')
    loaded('A0', tmp_path / 'dead.pth')
    assert any('stage2.1 (1)' in m and 'clamped' in m for m in messages)
