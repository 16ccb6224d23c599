"""RepVGG backbone: architecture tables, dilation, freezing, checkpointing, deploy form, input validation."""
import copy

import pytest
import torch
from mmseg.registry import MODELS

from repseg.models.backbones import ARCH_SETTINGS, RepVGG, RepVGGBlock

# FACTS.md 1: stage 0..4 channels
CHANNELS = {
    'A0': (48, 48, 96, 192, 1280), 'A1': (64, 64, 128, 256, 1280), 'A2': (64, 96, 192, 384, 1408),
    'B0': (64, 64, 128, 256, 1280), 'B1': (64, 128, 256, 512, 2048), 'B2': (64, 160, 320, 640, 2560),
    'B3': (64, 192, 384, 768, 2560), 'D2se': (64, 160, 320, 640, 2560),
}
# Official train-time parameter counts in millions, including the 1000-class classifier (FACTS.md 1)
OFFICIAL_PARAMS_M = {'A0': 9.11, 'A1': 14.09, 'A2': 28.21, 'B0': 15.82, 'B1': 57.42, 'B1g2': 45.78,
                     'B1g4': 39.97, 'D2se': 133.33}
PSP = dict(strides=(2, 2, 2, 1, 1), dilations=(1, 1, 1, 2, 4))


def build(arch, **kwargs) -> RepVGG:
    return MODELS.build(dict(type='RepVGG', arch=arch, out_indices=(0, 1, 2, 3, 4), **kwargs))


def build_meta(arch, **kwargs) -> RepVGG:
    """The full-size backbone without weights (no memory, no init): for structure, shapes and counts."""
    with torch.device('meta'):
        return build(arch, **kwargs)


@pytest.mark.parametrize('arch', sorted(CHANNELS))
@pytest.mark.parametrize('layout', ['os32', 'os8'])
def test_stage_channels_and_sizes(arch, layout):
    model = build_meta(arch, **(PSP if layout == 'os8' else {})).eval()
    with torch.no_grad():
        outs = model(torch.zeros(1, 3, 64, 96, device='meta'))  # shapes only: the meta device computes just those
    strides = (2, 4, 8, 16, 32) if layout == 'os32' else (2, 4, 8, 8, 8)
    assert [o.shape[1] for o in outs] == list(CHANNELS[arch])
    assert [tuple(o.shape[2:]) for o in outs] == [(64 // s, 96 // s) for s in strides]


@pytest.mark.parametrize('arch', sorted(OFFICIAL_PARAMS_M))
def test_param_count_matches_official(arch):
    model = build_meta(arch)
    n = sum(p.numel() for p in model.parameters())
    classifier = model.channels[-1] * 1000 + 1000
    assert round((n + classifier) / 1e6, 2) == OFFICIAL_PARAMS_M[arch]


def test_official_arch_spelling_and_grouping():
    model = build_meta('RepVGG-B1g4')
    assert model.arch_settings == {**ARCH_SETTINGS['B1g4']}
    blocks = [model.stage0] + [b for s in range(1, 5) for b in getattr(model, f'stage{s}')]
    groups = [b.groups for b in blocks]
    # layers 2, 4, ..., 26 grouped; stage 0 (index 0) never; never two adjacent layers
    assert [i for i, g in enumerate(groups) if g == 4] == list(range(2, 27, 2))
    assert all(g in (1, 4) for g in groups)
    assert model.stage1[0].rbr_1x1.conv.groups == model.stage1[0].rbr_dense.conv.groups == 1
    assert model.stage1[1].rbr_1x1.conv.groups == 4


def test_dilation_layout_psp_and_fast():
    model = build_meta('B1g2', **PSP)
    dil = {s: [b.rbr_dense.conv.dilation[0] for b in getattr(model, f'stage{s}')] for s in range(1, 5)}
    assert dil == {1: [1] * 4, 2: [1] * 6, 3: [2] * 16, 4: [4]}
    # 1x1 branch: stride 1 with the dilated stages, never dilated, no padding
    b = model.stage3[0]
    assert b.rbr_1x1.conv.stride == (1, 1) and b.rbr_1x1.conv.dilation == (1, 1) and b.rbr_1x1.conv.padding == (0, 0)
    assert b.rbr_dense.conv.padding == (2, 2)
    fast = build_meta('B1g2', fast=True, **PSP)
    dil = {s: [b.rbr_dense.conv.dilation[0] for b in getattr(fast, f'stage{s}')] for s in range(3, 5)}
    assert dil == {3: [1] * 12 + [2] * 4, 4: [4]}
    assert fast.stage3[0].rbr_dense.conv.stride == (1, 1)  # the stage keeps its stride: output stride 8


def test_custom_arch_dict():
    arch = dict(num_blocks=(1, 1, 2, 1), width_factor=(0.5, 0.5, 0.5, 1), group_layer_map={2: 2})
    model = build(arch)
    assert model.channels == [32, 32, 64, 128, 512]
    assert model.stage2[0].groups == 2 and model.stage3[0].groups == 1


@pytest.mark.parametrize('kwargs, match', [
    (dict(arch='C7'), r"unknown RepVGG arch 'C7'; expected one of A0, A1, .*D2se"),
    (dict(arch=dict(num_blocks=(1, 1, 1, 1))), r'arch dict has keys'),
    (dict(arch='A0', strides=(2, 2, 2, 1)), r'strides=\(2, 2, 2, 1\): expected 5 positive ints'),
    (dict(arch='A0', dilations=(1, 1, 1, 2, 0)), r'dilations=\(1, 1, 1, 2, 0\): expected 5 positive ints'),
    (dict(arch='A0', out_indices=(3, 5)), r'out_indices=\(3, 5\): expected a non-empty subset of 0-4'),
    (dict(arch='A0', frozen_stages=5), r'frozen_stages=5'),
])
def test_bad_arguments_raise_one_line_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match) as info:
        RepVGG(**kwargs)
    assert '\n' not in str(info.value)


def test_frozen_stages_freeze_exactly_those_params():
    model = build('A0', frozen_stages=2)
    model.train()
    for name, param in model.named_parameters():
        stage = int(name.split('.')[0][len('stage'):])
        assert param.requires_grad == (stage > 2), name
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            stage = int(name.split('.')[0][len('stage'):])
            assert module.training == (stage > 2), name
    # frozen parameters do not move under an optimizer step
    before = copy.deepcopy(model.state_dict())
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    model(torch.randn(2, 3, 32, 32))[-1].mean().backward()
    opt.step()
    after = model.state_dict()
    for key in before:
        stage = int(key.split('.')[0][len('stage'):])
        if key.endswith('num_batches_tracked'):
            continue
        assert torch.equal(before[key], after[key]) == (stage <= 2), key


def test_norm_eval_keeps_bn_in_eval():
    model = build('A0', norm_eval=True).train()
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and not any(m.training for m in bns)
    assert model.stage4[0].training  # everything else trains
    stats = model.stage2[0].rbr_dense.bn.running_mean.clone()
    model(torch.randn(2, 3, 32, 32))
    assert torch.equal(stats, model.stage2[0].rbr_dense.bn.running_mean)


def test_with_cp_gives_same_gradients():
    torch.manual_seed(0)
    ref = build('A0', **PSP)
    cp = build('A0', with_cp=True, **PSP)
    cp.load_state_dict(ref.state_dict())
    x = torch.randn(2, 3, 40, 56)
    grads = []
    for model in (ref, cp):
        model.train()
        xi = x.clone().requires_grad_(True)
        sum(o.square().mean() for o in model(xi)).backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()} | {'input': xi.grad})
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], rtol=1e-5, atol=1e-6, msg=name)


def test_deploy_keys_equal_converted_keys():
    for arch in ('A0', 'B1g2', 'D2se'):
        built = build_meta(arch, deploy=True, **PSP)
        converted = build_meta(arch, **PSP)
        with torch.device('meta'):  # the fused convs too
            converted.switch_to_deploy()
        assert built.deploy and converted.deploy
        assert {k: v.shape for k, v in built.state_dict().items()} == \
            {k: v.shape for k, v in converted.state_dict().items()}
        assert all(isinstance(m, RepVGGBlock) and m.deploy for m in built.modules() if isinstance(m, RepVGGBlock))
