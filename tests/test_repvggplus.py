"""RepVGGplus-L2pse in the RepVGG backbone: the arch table, the post-SE block, exact re-parameterization with every
backbone option, whole PSPNets, import of official RepVGGplus files and the official parameter counts.

Official files are laid out here from an independent key table of the official ``repvggplus.py`` (blocks in
``stageN.blocks.i``, stage 3 split into ``stage3_first`` / ``stage3_second``, auxiliary classifiers ``stage1_aux``,
``stage2_aux``, ``stage3_first_aux``, classifier ``linear``), not from the importer's tables. The per-option tests
use a small post-SE arch; the full L2pse is built for the parameter counts (on the meta device) and for one import.
"""
import copy
import importlib.util
import math

import pytest
import torch
from conftest import REPO, randomize_bn
from mmengine.config import Config
from mmseg.registry import MODELS

import repseg
from repseg.checkpoint import convert_checkpoint, load_pretrained_backbone, to_repseg_keys
from repseg.models.backbones import ARCH_SETTINGS, RepVGGBlock, resolve_arch
from repseg.utils import CheckpointError

ALL_STAGES = (0, 1, 2, 3, 4)
PSP = dict(strides=(2, 2, 2, 1, 1), dilations=(1, 1, 1, 2, 4))
LAYOUTS = {'os32': {}, 'os8': PSP, 'os8-fast': dict(fast=True, **PSP)}
REL_TOL = 1e-4  # fused weights: max |diff| <= REL_TOL * max |output| per stage
EXACT_TOL = 1e-5  # renamed weights
X_SHAPE = (1, 3, 64, 96)  # non-square on purpose: the official SE pools over a window as wide as the map

# The official RepVGGplus-L2pse (create_RepVGGplus_L2pse) and a small arch of the same kind for the option tests
L2PSE_BLOCKS, L2PSE_WIDTHS = (8, 14, 24, 1), (2.5, 2.5, 2.5, 5)
TINY_BLOCKS, TINY_WIDTHS = (2, 2, 6, 1), (0.25, 0.25, 0.25, 0.5)
TINY = dict(num_blocks=TINY_BLOCKS, width_factor=TINY_WIDTHS, use_post_se=True)
RELEASE_FILE = 'checkpoints/RepVGGplus-L2pse-train256-acc84.06.pth'

# --- the official layout (repvggplus.py), written out independently --------------------------------------------------
BN_LEAVES = ('weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked')
BUFFERS = ('running_mean', 'running_var', 'num_batches_tracked')
AUX = ('stage1_aux', 'stage2_aux', 'stage3_first_aux')


def bn_shapes(prefix, channels):
    return {f'{prefix}{leaf}': () if leaf == 'num_batches_tracked' else (channels,) for leaf in BN_LEAVES}


def official_block(prefix, cin, cout, stride, deploy):
    """RepVGGplusBlock(cin, cout, 3, stride, padding=1, use_post_se=True).state_dict() shapes."""
    shapes = {}
    if deploy:
        shapes.update({f'{prefix}rbr_reparam.weight': (cout, cin, 3, 3), f'{prefix}rbr_reparam.bias': (cout,)})
    else:
        if cin == cout and stride == 1:
            shapes.update(bn_shapes(f'{prefix}rbr_identity.', cin))
        shapes[f'{prefix}rbr_dense.conv.weight'] = (cout, cin, 3, 3)
        shapes.update(bn_shapes(f'{prefix}rbr_dense.bn.', cout))
        shapes[f'{prefix}rbr_1x1.conv.weight'] = (cout, cin, 1, 1)
        shapes.update(bn_shapes(f'{prefix}rbr_1x1.bn.', cout))
    mid = cout // 4  # SEBlock(out_channels, internal_neurons=out_channels // 4)
    shapes.update({f'{prefix}post_se.down.weight': (mid, cout, 1, 1), f'{prefix}post_se.down.bias': (mid,),
                   f'{prefix}post_se.up.weight': (cout, mid, 1, 1), f'{prefix}post_se.up.bias': (cout,)})
    return shapes


def official_layout(num_blocks, widths, deploy, aux=None, classes=1000):
    """Key -> shape of RepVGGplus(num_blocks, classes, widths, deploy, use_post_se=True).state_dict(); the
    auxiliary classifiers exist in the train form (``aux`` overrides: a train model whose blocks alone were
    switched to deploy keeps them)."""
    aux = not deploy if aux is None else aux
    w = [int(64 * widths[0]), int(128 * widths[1]), int(256 * widths[2]), int(512 * widths[3])]
    stem = min(64, w[0])
    stages = [('stage1', w[0], num_blocks[0], 2), ('stage2', w[1], num_blocks[1], 2),
              ('stage3_first', w[2], num_blocks[2] // 2, 2), ('stage3_second', w[2], num_blocks[2] // 2, 1),
              ('stage4', w[3], num_blocks[3], 2)]
    shapes = official_block('stage0.', 3, stem, 2, deploy)
    cin = stem
    for name, cout, count, stride in stages:
        for i in range(count):
            shapes.update(official_block(f'{name}.blocks.{i}.', cin, cout, stride if i == 0 else 1, deploy))
            cin = cout
    if aux:  # Sequential(conv_bn_relu(c, c, 3, stride 2), AdaptiveAvgPool2d, Flatten, Linear(c, classes))
        for name, channels in zip(AUX, w[:3]):
            shapes[f'{name}.0.conv.weight'] = (channels, channels, 3, 3)
            shapes.update(bn_shapes(f'{name}.0.bn.', channels))
            shapes.update({f'{name}.3.weight': (classes, channels), f'{name}.3.bias': (classes,)})
    shapes.update({'linear.weight': (classes, w[3]), 'linear.bias': (classes,)})
    return shapes


def is_head(key):
    return key.split('.')[0] in AUX + ('linear',)


def count_params(shapes):
    return sum(math.prod(shape) for key, shape in shapes.items() if not key.endswith(BUFFERS))


def to_official(state, stage3_blocks):
    """RepSeg backbone keys -> official RepVGGplus keys ('stage3.13.x' -> 'stage3_second.blocks.1.x' for 24)."""
    half, out = stage3_blocks // 2, {}
    for key, value in state.items():
        stage, rest = key.split('.', 1)
        if stage == 'stage0':
            out[key] = value
            continue
        index, rest = rest.split('.', 1)
        index = int(index)
        if stage == 'stage3':
            stage, index = ('stage3_first', index) if index < half else ('stage3_second', index - half)
        out[f'{stage}.blocks.{index}.{rest}'] = value
    return out


def head_tensors(layout, seed=0):
    """Random tensors for the aux classifiers and ``linear`` of an official layout."""
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for key, shape in layout.items():
        if is_head(key):
            out[key] = torch.tensor(0) if key.endswith('num_batches_tracked') else \
                torch.rand(shape, generator=gen) + (0.5 if key.endswith('running_var') else 0)
    return out


def as_official_file(state, num_blocks, widths, deploy, aux=None):
    """A whole official model's state dict: the renamed backbone plus aux classifiers and ``linear``."""
    return {**to_official(state, num_blocks[2]), **head_tensors(official_layout(num_blocks, widths, deploy, aux))}


def shapes_of(state):
    return {key: tuple(value.shape) for key, value in state.items()}


# --- helpers ------------------------------------------------------------------------------------------------------
def build(arch=TINY, **kwargs):
    kwargs.setdefault('out_indices', ALL_STAGES)
    return MODELS.build(dict(type='RepVGG', arch=arch, **kwargs))


def run(model, x):
    with torch.no_grad():
        return model.eval()(x)


def max_rel_diff(a, b):
    return ((a - b).abs().max() / a.abs().max()).item()


def assert_outputs_close(ref, out, tol, what):
    assert len(ref) == len(out)
    for stage, (r, o) in enumerate(zip(ref, out)):
        assert r.shape == o.shape and r.abs().max() > 0
        assert max_rel_diff(r, o) <= tol, f'{what} stage {stage}: {max_rel_diff(r, o):.2e}'


def meta_build(arch=TINY, **kwargs):
    with torch.device('meta'):
        return build(arch, **kwargs)


def meta_state(arch, deploy):
    return meta_build(arch, deploy=deploy).state_dict()


# --- the arch table and the block ---------------------------------------------------------------------------------
def test_l2pse_arch_table_entry_and_layout():
    assert resolve_arch('RepVGGplus-L2pse') == resolve_arch('L2pse') == ARCH_SETTINGS['L2pse']
    assert ARCH_SETTINGS['L2pse'] == dict(num_blocks=L2PSE_BLOCKS, width_factor=L2PSE_WIDTHS, group_layer_map=None,
                                          use_se=False, use_post_se=True)
    for wrong in ('RepVGG-L2pse', 'RepVGGplus-B2'):
        with pytest.raises(ValueError, match=f'unknown RepVGG arch {wrong!r}'):
            resolve_arch(wrong)
    with torch.device('meta'):
        model = build('RepVGGplus-L2pse')
    assert model.channels == [64, 160, 320, 640, 2560]
    blocks = [model.stage0] + [b for s in range(1, 5) for b in getattr(model, f'stage{s}')]
    assert [len(getattr(model, f'stage{s}')) for s in range(1, 5)] == list(L2PSE_BLOCKS)
    for block in blocks:
        assert isinstance(block.se, torch.nn.Identity) and block.groups == 1
        c = block.out_channels
        assert block.post_se.down.weight.shape == (c // 4, c, 1, 1) and block.post_se.down.bias.shape == (c // 4,)
        assert block.post_se.up.weight.shape == (c, c // 4, 1, 1) and block.post_se.up.bias.shape == (c,)


def test_post_se_follows_the_relu_and_pools_the_whole_map():
    torch.manual_seed(0)
    block = randomize_bn(RepVGGBlock(8, 8, use_post_se=True)).eval()
    assert 'post_se.down.weight' in block.state_dict() and not any(k.startswith('se.') for k in block.state_dict())
    x = torch.randn(2, 8, 5, 11)

    def se(t):  # pooled over the whole (non-square) map
        return t * torch.sigmoid(block.post_se.up(torch.relu(block.post_se.down(t.mean(dim=(2, 3), keepdim=True)))))

    with torch.no_grad():
        branches = block.rbr_dense(x) + block.rbr_1x1(x) + block.rbr_identity(x)
        torch.testing.assert_close(block(x), se(torch.relu(branches)), rtol=0, atol=1e-6)
        # SE before the ReLU (D2se's place) gives another result: the check above can tell the two apart
        assert (block(x) - torch.relu(se(branches))).abs().max() > 1e-3


# --- exactness of the re-parameterization ---------------------------------------------------------------------------
@pytest.mark.parametrize('layout', sorted(LAYOUTS))
def test_post_se_backbone_converts_exactly(layout):
    torch.manual_seed(0)
    model = randomize_bn(build(**LAYOUTS[layout])).eval()
    x = torch.randn(*X_SHAPE)
    post_se = {k: v.clone() for k, v in model.state_dict().items() if '.post_se.' in k}
    with torch.no_grad():
        ref = model(x)
        repseg.reparameterize(model)
        out = model(x)
    assert model.deploy
    state = model.state_dict()
    assert len(post_se) == 4 * 12 and all(torch.equal(state[k], v) for k, v in post_se.items())  # kept, bit for bit
    assert set(state) - set(post_se) == {k for k in state if '.rbr_reparam.' in k}
    assert_outputs_close(ref, out, REL_TOL, layout)
    built = build(deploy=True, **LAYOUTS[layout])
    assert shapes_of(built.state_dict()) == shapes_of(state)


def test_fast_dilates_only_the_last_five_blocks():
    model = build(fast=True, **PSP)
    dilations = {s: [b.rbr_dense.conv.dilation[0] for b in getattr(model, f'stage{s}')] for s in (3, 4)}
    assert dilations == {3: [1, 1, 2, 2, 2, 2], 4: [4]}
    assert model.stage3[0].rbr_dense.conv.stride == (1, 1) and model.stage4[0].rbr_dense.conv.stride == (1, 1)


def test_a_wrong_post_se_is_caught():
    """Guard against a check that cannot fail: dropping one post-SE after conversion must exceed the tolerance."""
    torch.manual_seed(0)
    model = randomize_bn(build(**PSP)).eval()
    x = torch.randn(*X_SHAPE)
    ref = run(model, x)
    repseg.reparameterize(model)
    model.stage3[2].post_se = torch.nn.Identity()
    assert max_rel_diff(ref[-1], run(model, x)[-1]) > REL_TOL


def test_training_options_cover_post_se():
    """frozen_stages, norm_eval and with_cp with post-SE blocks: frozen post-SE, frozen BN statistics, and the same
    gradients with and without checkpointing."""
    torch.manual_seed(0)
    kwargs = dict(frozen_stages=1, norm_eval=True, out_indices=(1, 3, 4), **PSP)
    ref = randomize_bn(build(**kwargs))
    cp = build(with_cp=True, **kwargs)
    cp.load_state_dict(ref.state_dict())
    x = torch.randn(2, 3, 32, 48)  # small: dilated convs backpropagate slowly on CPUs
    grads = []
    for model in (ref, cp):
        model.train()
        stats = model.stage3[0].rbr_dense.bn.running_mean.clone()
        xi = x.clone().requires_grad_(True)
        sum(o.square().mean() for o in model(xi)).backward()
        assert torch.equal(stats, model.stage3[0].rbr_dense.bn.running_mean)  # norm_eval
        grads.append({n: p.grad for n, p in model.named_parameters()} | {'input': xi.grad})
        for name, param in model.named_parameters():
            frozen = int(name.split('.')[0][len('stage'):]) <= 1
            assert param.requires_grad != frozen and (param.grad is None) == frozen, name
        assert model.stage3[5].post_se.up.weight.grad.abs().sum() > 0
    for name, grad in grads[0].items():
        if grad is not None:
            torch.testing.assert_close(grad, grads[1][name], rtol=1e-5, atol=1e-6, msg=name)


def build_pspnet(norm_type):
    norm_cfg = dict(type=norm_type, requires_grad=True)
    return MODELS.build(dict(
        type='EncoderDecoder',
        data_preprocessor=dict(type='SegDataPreProcessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
                               bgr_to_rgb=True, pad_val=0, seg_pad_val=255),
        backbone=dict(type='RepVGG', arch=TINY, out_indices=(3, 4), norm_cfg=norm_cfg, fast=True, **PSP),
        decode_head=dict(type='PSPHead', in_channels=256, in_index=1, channels=32, pool_scales=(1, 2, 3, 6),
                         dropout_ratio=0.1, num_classes=19, norm_cfg=norm_cfg, align_corners=False),
        auxiliary_head=dict(type='FCNHead', in_channels=64, in_index=0, channels=16, num_convs=1, concat_input=False,
                            dropout_ratio=0.1, num_classes=19, norm_cfg=norm_cfg, align_corners=False),
        train_cfg=dict(), test_cfg=dict(mode='whole')))


@pytest.mark.parametrize('norm_type', ['BN', 'SyncBN'])
def test_pspnet_with_post_se_backbone_converts_with_heads_bit_identical(norm_type):
    """Converted in train mode (with SyncBN no process group is needed: the running statistics are used)."""
    torch.manual_seed(0)
    model = randomize_bn(build_pspnet(norm_type)).eval()
    x = torch.randn(1, 3, 65, 97)
    before = copy.deepcopy(model.state_dict())
    with torch.no_grad():
        ref = model(x, mode='tensor')
        repseg.reparameterize(model.train())
        out = model.eval()(x, mode='tensor')
    after = model.state_dict()
    unchanged = [k for k in before if not k.startswith('backbone.') or '.post_se.' in k]
    assert any('.post_se.' in k for k in unchanged) and all(torch.equal(before[k], after[k]) for k in unchanged)
    assert all('.rbr_' in k for k in set(before) ^ set(after))
    assert max_rel_diff(ref, out) <= REL_TOL


# --- parameter counts (official code: deploy 124,590,960 without linear; train 137.54M without aux and linear) ------
def test_l2pse_parameter_counts_match_the_official_code():
    deploy = official_layout(L2PSE_BLOCKS, L2PSE_WIDTHS, deploy=True)
    train = official_layout(L2PSE_BLOCKS, L2PSE_WIDTHS, deploy=False)
    deploy_backbone = {k: v for k, v in deploy.items() if not is_head(k)}
    train_backbone = {k: v for k, v in train.items() if not is_head(k)}
    assert count_params(deploy_backbone) == 124_590_960
    assert round(count_params(deploy) / 1e6, 2) == 127.15  # with linear
    assert round(count_params(train_backbone) / 1e6, 2) == 137.54
    assert round(count_params(train) / 1e6, 2) == 146.06  # with aux classifiers and linear
    with torch.device('meta'):
        models = {form: build('RepVGGplus-L2pse', deploy=form == 'deploy') for form in ('train', 'deploy')}
    assert sum(p.numel() for p in models['deploy'].parameters()) == 124_590_960
    assert sum(p.numel() for p in models['train'].parameters()) == count_params(train_backbone) == 137_538_224
    # key for key, the official backbone is RepSeg's (stage 3 split in two)
    for form, layout in (('train', train_backbone), ('deploy', deploy_backbone)):
        assert shapes_of(to_official(models[form].state_dict(), 24)) == layout


# --- import of official RepVGGplus files ----------------------------------------------------------------------------
class Source:
    """A randomized small post-SE backbone (train and deploy form) and its stage outputs at output stride 8."""

    def __init__(self):
        torch.manual_seed(0)
        self.x = torch.randn(*X_SHAPE)
        train = randomize_bn(build(TINY, **PSP)).eval()
        deploy = repseg.reparameterize(copy.deepcopy(train))
        self.ref = {'train': run(train, self.x), 'deploy': run(deploy, self.x)}
        self.state = {'train': train.state_dict(), 'deploy': deploy.state_dict()}

    def official(self, form, aux=None):
        return as_official_file(self.state[form], TINY_BLOCKS, TINY_WIDTHS, form == 'deploy', aux)


@pytest.fixture(scope='module')
def tiny():
    return Source()


@pytest.mark.parametrize('form, aux', [('train', True), ('deploy', False), ('deploy', True)])
def test_official_file_maps_onto_the_backbone_and_drops_its_heads(tiny, form, aux):
    obj = tiny.official(form, aux)
    layout = official_layout(TINY_BLOCKS, TINY_WIDTHS, form == 'deploy', aux)
    assert shapes_of(obj) == layout  # the test's own rename agrees with the official table
    state, fmt, dropped = to_repseg_keys(obj, 'plus.pth')
    assert fmt == 'repvggplus'
    assert set(state) == set(tiny.state[form]) and all(torch.equal(state[k], v) for k, v in tiny.state[form].items())
    assert sorted(dropped) == sorted(k for k in layout if is_head(k))
    assert len(dropped) == (26 if aux else 2)  # 8 per aux classifier (conv, 5 BN entries, fc weight and bias)


@pytest.mark.parametrize('form', ['train', 'deploy'])
def test_official_file_loads_through_init_cfg_and_reproduces_the_source(tiny, tmp_path, form):
    path = tmp_path / f'RepVGGplus-tiny-{form}.pth'
    torch.save({'state_dict': tiny.official(form, aux=True)}, path)
    model = build(deploy=form == 'deploy', init_cfg=dict(type='Pretrained', checkpoint=str(path)), **PSP)
    model.init_weights()
    assert_outputs_close(tiny.ref[form], run(model, tiny.x), EXACT_TOL, f'{form} init_cfg')
    if form == 'train':  # fused on load into a deploy backbone
        model = build(deploy=True, **PSP)
        info = load_pretrained_backbone(model, path)
        assert_outputs_close(tiny.ref['train'], run(model, tiny.x), REL_TOL, 'fused on load')
        assert info.format == 'repvggplus' and info.form == 'deploy' and info.source_form == 'train'
        assert 'dropped 26 (linear.* (2), stage1_aux.* (8), stage2_aux.* (8), stage3_first_aux.* (8))' in \
            info.summary()
    else:
        with pytest.raises(CheckpointError, match='deploy-time .* backbone is train-time'):
            load_pretrained_backbone(build(**PSP), path)


def test_a_wrong_stage3_order_is_caught(tiny, tmp_path):
    """Guard against a check that cannot fail: a file whose stage-3 halves are swapped (same shapes past block 0)
    loads, and must miss the tolerance."""
    first, second = 'stage3_first.blocks.', 'stage3_second.blocks.'
    swapped = {}
    for key, value in tiny.official('train').items():
        for a, b in ((first, second), (second, first)):
            if key.startswith(a) and not key.startswith(f'{a}0.'):
                key = b + key[len(a):]
                break
        swapped[key] = value
    torch.save(swapped, tmp_path / 'swapped.pth')
    model = build(**PSP)
    load_pretrained_backbone(model, tmp_path / 'swapped.pth')
    assert max_rel_diff(tiny.ref['train'][3], run(model, tiny.x)[3]) > REL_TOL


def import_pretrained_tool():
    spec = importlib.util.spec_from_file_location('import_pretrained', REPO / 'tools' / 'import_pretrained.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_full_l2pse_official_file_through_the_tool_and_init_cfg(tmp_path, capsys):
    """The official-format L2pse training file (aux classifiers and linear included): init_cfg into a train
    backbone reproduces it; tools/import_pretrained.py --to-deploy writes a fused file that reproduces it too."""
    torch.manual_seed(0)
    model = randomize_bn(build('RepVGGplus-L2pse', **PSP)).eval()
    x = torch.randn(1, 3, 32, 48)  # half of X_SHAPE's sides, still non-square: the cost here is the 137M weights
    ref = run(model, x)
    src = tmp_path / 'RepVGGplus-L2pse-train256-acc84.06.pth'
    obj = as_official_file(model.state_dict(), L2PSE_BLOCKS, L2PSE_WIDTHS, deploy=False)
    assert shapes_of(obj) == official_layout(L2PSE_BLOCKS, L2PSE_WIDTHS, deploy=False)
    torch.save(obj, src)
    del model, obj
    loaded = build('L2pse', init_cfg=dict(type='Pretrained', checkpoint=str(src)), **PSP)
    loaded.init_weights()
    assert_outputs_close(ref, run(loaded, x), EXACT_TOL, 'L2pse init_cfg')
    del loaded
    dst = tmp_path / 'l2pse_deploy.pth'
    capsys.readouterr()
    import_pretrained_tool().main([str(src), str(dst), '--to-deploy', '--arch', 'RepVGGplus-L2pse'])  # in process
    printed = capsys.readouterr().out.splitlines()
    for line in ('format: repvggplus (train-time)', 'arch: RepVGGplus-L2pse', 'tensors: 288 (deploy-time, fused)',
                 'dropped: linear.* (2), stage1_aux.* (8), stage2_aux.* (8), stage3_first_aux.* (8)'):
        assert line in printed
    deploy = meta_build('L2pse', deploy=True, **PSP)  # no init of 125M weights that the file replaces
    deploy.load_state_dict(torch.load(dst, weights_only=True), strict=True, assign=True)
    assert not any(t.is_meta for t in deploy.state_dict().values())
    assert_outputs_close(ref, run(deploy, x), REL_TOL, 'L2pse tool --to-deploy')


@pytest.mark.parametrize('form, aux', [('train', True), ('deploy', False), ('deploy', True)])
def test_l2pse_detected_from_keys_and_shapes(form, aux):
    deploy = form == 'deploy'
    obj = as_official_file(meta_state('L2pse', deploy), L2PSE_BLOCKS, L2PSE_WIDTHS, deploy, aux)
    state, info = convert_checkpoint({'model': {f'module.{k}': v for k, v in obj.items()}}, 'plus.pth')
    assert (info.format, info.arch, info.source_form, info.num_tensors) == \
        ('repvggplus', 'L2pse', form, (983, 288)[deploy])
    assert len(info.dropped) == (26 if aux else 2)
    _, info = convert_checkpoint(state, 'repseg_keys.pth', arch='RepVGGplus-L2pse')  # RepSeg's own keys
    assert (info.format, info.arch) == ('official', 'L2pse')


def test_repvgg_files_and_repvggplus_files_name_the_arch_they_fit(tmp_path):
    """D2se has L2pse's depth and widths: the SE place (se / post_se) alone tells them apart, in both directions."""
    d2se = meta_state('D2se', False)
    l2pse = as_official_file(meta_state('L2pse', False), L2PSE_BLOCKS, L2PSE_WIDTHS, deploy=False)
    with pytest.raises(CheckpointError, match=r'^d2se\.pth: does not fit RepVGGplus-L2pse \(\d+ problems: .*; its '
                                              r'keys and shapes fit RepVGG-D2se$'):
        convert_checkpoint(d2se, 'd2se.pth', arch='RepVGGplus-L2pse')
    with pytest.raises(CheckpointError, match=r'fit RepVGGplus-L2pse$'):
        convert_checkpoint(l2pse, 'l2pse.pth', arch='D2se')
    # a RepVGG file into the L2pse backbone, by the loader behind init_cfg (meta tensors: the check runs before any
    # weight is copied)
    with torch.device('meta'):
        model = build('RepVGGplus-L2pse')
    for name, state in (('RepVGG-D2se', d2se), ('RepVGG-A0', meta_state('A0', False))):
        path = tmp_path / f'{name}-train.pth'
        torch.save({**state, 'linear.weight': torch.empty(1000, 8, device='meta')}, path)
        with pytest.raises(CheckpointError) as err:
            load_pretrained_backbone(model, path)
        msg = str(err.value)
        assert '\n' not in msg and msg.startswith(f'{path}: does not fit the RepVGGplus-L2pse backbone, ')
        assert msg.endswith(f'; the file fits {name}, not RepVGGplus-L2pse')


# --- configs --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('name, fast', [('pspnet_repvggplus_l2pse.py', False),
                                        ('pspnet_repvggplus_l2pse_fast.py', True)])
def test_configs_use_l2pse_and_the_official_training_file(name, fast):
    cfg = Config.fromfile(str(REPO / 'configs' / name))
    backbone = cfg.model.backbone
    assert resolve_arch(backbone.arch) == ARCH_SETTINGS['L2pse'] and backbone.fast == fast
    assert backbone.init_cfg == dict(type='Pretrained', checkpoint=RELEASE_FILE)
    assert cfg.model.decode_head.in_channels == 2560 and cfg.model.auxiliary_head.in_channels == 640
    assert backbone.strides == PSP['strides'] and backbone.dilations == PSP['dilations']
