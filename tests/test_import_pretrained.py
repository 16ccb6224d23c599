"""Importing ImageNet-pretrained RepVGG checkpoints: every format and form, arch detection, strict loading, safety,
and tools/import_pretrained.py end to end.

The files are laid out here from a RepSeg model with rename tables written from FACTS.md section 3, independently of
the importer, so that a wrong table in either place shows.
"""
import copy
import os
import subprocess
import sys

import pytest
import torch
from conftest import REPO, randomize_bn, run_tool_in_process
from mmseg.registry import MODELS

import repseg
import repseg.checkpoint.loading as loading
from repseg.checkpoint import (convert_checkpoint, expected_shapes, fitting_archs, load_backbone_checkpoint,
                               load_pretrained_backbone)
from repseg.models.backbones import ARCH_SETTINGS
from repseg.utils import CheckpointError

ALL_STAGES = (0, 1, 2, 3, 4)
EXACT_TOL = 1e-5  # renamed weights: the outputs must agree to float rounding
FUSED_TOL = 1e-4  # fused weights: max |diff| <= FUSED_TOL * max |output| per stage
SMALL_SE = dict(num_blocks=(2, 2, 2, 1), width_factor=(0.5, 0.5, 0.5, 0.5), use_se=True)

# --- the formats of FACTS.md 3, as rename tables from RepSeg's (= official) module paths -------------------------
MMPRETRAIN_MODULES = {'rbr_dense.conv': 'branch_3x3.conv', 'rbr_dense.bn': 'branch_3x3.norm',
                      'rbr_1x1.conv': 'branch_1x1.conv', 'rbr_1x1.bn': 'branch_1x1.norm',
                      'rbr_identity': 'branch_norm', 'rbr_reparam': 'branch_reparam',
                      'se.down': 'se_layer.conv1.conv', 'se.up': 'se_layer.conv2.conv'}
TIMM_MODULES = {'rbr_dense.conv': 'conv_kxk.conv', 'rbr_dense.bn': 'conv_kxk.bn',
                'rbr_1x1.conv': 'conv_1x1.conv', 'rbr_1x1.bn': 'conv_1x1.bn',
                'rbr_identity': 'identity', 'rbr_reparam': 'reparam_conv',
                'se.down': 'attn.fc1', 'se.up': 'attn.fc2'}


def split_key(key):
    """'stage2.3.rbr_dense.bn.weight' -> (2, '3', 'rbr_dense.bn', 'weight'); stage 0 has no block index."""
    parts = key.split('.')
    if parts[0] == 'stage0':
        return 0, None, '.'.join(parts[1:-1]), parts[-1]
    return int(parts[0][len('stage'):]), parts[1], '.'.join(parts[2:-1]), parts[-1]


def classifier(sd, prefix):
    channels = next(v.shape[0] for k, v in reversed(list(sd.items())) if k.endswith('.weight') and v.dim() == 4)
    return {f'{prefix}weight': torch.randn(7, channels), f'{prefix}bias': torch.randn(7)}


def as_official(sd):
    return {**sd, **classifier(sd, 'linear.')}


def as_mmpretrain(sd, prefix='backbone.'):
    out = {}
    for key, value in sd.items():
        stage, block, module, leaf = split_key(key)
        head = 'stem' if stage == 0 else f'stage_{stage}.{block}'
        out[f'{prefix}{head}.{MMPRETRAIN_MODULES[module]}.{leaf}'] = value
    return {**out, **classifier(sd, 'head.fc.')} if prefix else out


def as_timm(sd):
    out = {}
    for key, value in sd.items():
        stage, block, module, leaf = split_key(key)
        head = 'stem' if stage == 0 else f'stages.{stage - 1}.{block}'
        out[f'{head}.{TIMM_MODULES[module]}.{leaf}'] = value
    return {**out, **classifier(sd, 'head.fc.')}


# name -> (layout, wrapper, expected format, dropped key prefix)
FORMATS = {
    'official': (as_official, lambda sd: {'state_dict': sd, 'epoch': 120}, 'official', 'linear.'),
    'official-ddp': (as_official, lambda sd: {'model': {f'module.{k}': v for k, v in sd.items()}}, 'official',
                     'linear.'),
    'mmpretrain': (as_mmpretrain, lambda sd: {'meta': {'epoch': 3}, 'state_dict': sd}, 'mmpretrain', 'head.'),
    'mmpretrain-bare': (lambda sd: as_mmpretrain(sd, prefix=''), lambda sd: sd, 'mmpretrain', None),
    'timm': (as_timm, lambda sd: sd, 'timm', 'head.'),
}


def max_rel_diff(a, b):
    return ((a - b).abs().max() / a.abs().max()).item()


def assert_outputs_close(ref, out, tol, what):
    assert len(ref) == len(out) == len(ALL_STAGES)
    for stage, (r, o) in enumerate(zip(ref, out)):
        assert r.shape == o.shape and r.abs().max() > 0
        assert max_rel_diff(r, o) <= tol, f'{what} stage {stage}: {max_rel_diff(r, o):.2e}'


def build(arch='A0', deploy=False, **kwargs):
    return MODELS.build(dict(type='RepVGG', arch=arch, deploy=deploy, out_indices=ALL_STAGES, **kwargs))


def run(model, x):
    with torch.no_grad():
        return model.eval()(x)


class Source:
    """A randomized train-form backbone, its deploy form, and their stage outputs on a non-square input."""

    def __init__(self, arch):
        torch.manual_seed(0)
        self.arch = arch
        self.x = torch.randn(1, 3, 40, 72)
        self.train = randomize_bn(build(arch)).eval()
        self.deploy = repseg.reparameterize(copy.deepcopy(self.train))
        self.ref = {'train': run(self.train, self.x), 'deploy': run(self.deploy, self.x)}
        self.state = {'train': self.train.state_dict(), 'deploy': self.deploy.state_dict()}

    def write(self, path, fmt, form):
        layout, wrap, _, _ = FORMATS[fmt]
        torch.save(wrap(layout(self.state[form])), path)
        return path


@pytest.fixture(scope='module')
def a0():
    return Source('A0')


@pytest.fixture(scope='module')
def small_se():
    return Source(SMALL_SE)


@pytest.fixture(scope='module')
def a0_official_train(a0, tmp_path_factory):
    return a0.write(tmp_path_factory.mktemp('ckpt') / 'RepVGG-A0-train.pth', 'official', 'train')


# --- every format, train and deploy -------------------------------------------------------------------------------
@pytest.mark.parametrize('form', ['train', 'deploy'])
@pytest.mark.parametrize('fmt', sorted(FORMATS))
def test_every_format_imports_and_reproduces_the_source(a0, tmp_path, fmt, form):
    path = a0.write(tmp_path / f'{fmt}-{form}.pth', fmt, form)
    state, info = load_backbone_checkpoint(path)
    assert (info.format, info.arch, info.source_form, info.form) == (FORMATS[fmt][2], 'A0', form, form)
    assert set(state) == set(a0.state[form]) and info.num_tensors == len(a0.state[form]) == (349, 44)[form == 'deploy']
    dropped_prefix = FORMATS[fmt][3]
    assert all(k.startswith(dropped_prefix) for k in info.dropped) and len(info.dropped) == (2 if dropped_prefix else 0)
    model = build(deploy=form == 'deploy')
    model.load_state_dict(state, strict=True)
    assert_outputs_close(a0.ref[form], run(model, a0.x), EXACT_TOL, f'{fmt} {form} import')
    # the same file straight into the backbone through init_cfg (converted on load)
    model = build(deploy=form == 'deploy', init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    model.init_weights()
    assert_outputs_close(a0.ref[form], run(model, a0.x), EXACT_TOL, f'{fmt} {form} init_cfg')


@pytest.mark.parametrize('form', ['train', 'deploy'])
@pytest.mark.parametrize('fmt', ['mmpretrain', 'timm', 'official'])
def test_se_keys_map_and_reproduce_the_source(small_se, tmp_path, fmt, form):
    """SE blocks (D2se-like, shrunk): se_layer.conv{1,2}.conv / attn.fc{1,2} -> se.down / se.up."""
    path = small_se.write(tmp_path / 'se.pth', fmt, form)
    assert any('.se.down.' in k for k in small_se.state[form])
    model = build(SMALL_SE, deploy=form == 'deploy', init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    model.init_weights()
    assert_outputs_close(small_se.ref[form], run(model, small_se.x), EXACT_TOL, f'SE {fmt} {form}')


def test_a_wrong_rename_table_is_caught(a0, tmp_path, monkeypatch):
    """Guard against a check that cannot fail: swapping two same-shaped BNs must exceed the tolerance."""
    swapped = dict(MMPRETRAIN_MODULES, **{'rbr_dense.bn': 'branch_1x1.norm', 'rbr_1x1.bn': 'branch_3x3.norm'})
    monkeypatch.setattr(sys.modules[__name__], 'MMPRETRAIN_MODULES', swapped)
    state, _ = load_backbone_checkpoint(a0.write(tmp_path / 'swapped.pth', 'mmpretrain', 'train'))
    model = build()
    model.load_state_dict(state)
    assert max_rel_diff(a0.ref['train'][-1], run(model, a0.x)[-1]) > FUSED_TOL


# --- arch detection -------------------------------------------------------------------------------------------------
def meta_state(arch, deploy):
    with torch.device('meta'):
        return build(arch, deploy=deploy).state_dict()


@pytest.mark.parametrize('deploy', [False, True])
def test_every_published_arch_is_detected_from_keys_and_shapes(deploy):
    for arch in ARCH_SETTINGS:
        state = meta_state(arch, deploy)
        assert {k: tuple(v.shape) for k, v in state.items() if 'num_batches' not in k} == \
            expected_shapes(arch, deploy), arch
        assert fitting_archs(state, deploy) == [arch]


@pytest.mark.parametrize('layout', ['official', 'mmpretrain', 'timm'])
def test_grouped_and_se_archs_detected_in_each_format(layout):
    for arch, form in (('B1g2', 'train'), ('B1g2', 'deploy'), ('D2se', 'train'), ('D2se', 'deploy')):
        obj = FORMATS[layout][0](meta_state(arch, form == 'deploy'))
        _, info = convert_checkpoint(obj, f'{arch}.pth')
        assert (info.arch, info.format, info.source_form) == (arch, layout, form)
    with pytest.raises(CheckpointError, match=r'B1g2\.pth: does not fit RepVGG-B1 .*fit RepVGG-B1g2$'):
        convert_checkpoint(as_timm(meta_state('B1g2', False)), 'B1g2.pth', arch='RepVGG-B1')


# --- strict loading into the backbone -------------------------------------------------------------------------------
def test_wrong_arch_file_names_the_arch_it_fits(a0_official_train):
    model = build('A1', init_cfg=dict(type='Pretrained', checkpoint=str(a0_official_train)))
    with pytest.raises(CheckpointError) as err:
        model.init_weights()
    msg = str(err.value)
    assert '\n' not in msg and msg.startswith(str(a0_official_train))
    assert 'fits RepVGG-A0, not RepVGG-A1' in msg
    listed = msg.split('offending keys: ')[1].split('; the file fits')[0]
    assert listed.count(' has shape ') == 10 and ', and ' in listed and 'more' in listed


def test_missing_and_unexpected_keys_are_listed(a0, tmp_path):
    state = dict(a0.state['train'])
    del state['stage1.0.rbr_dense.conv.weight']
    state['stage2.1.rbr_1x1.conv.bias'] = torch.zeros(96)
    torch.save(state, tmp_path / 'bad.pth')
    with pytest.raises(CheckpointError, match=r'2 offending keys: missing stage1\.0\.rbr_dense\.conv\.weight, '
                                              r'unexpected stage2\.1\.rbr_1x1\.conv\.bias$'):
        load_pretrained_backbone(build(), tmp_path / 'bad.pth')


def test_train_file_fuses_into_deploy_backbone_and_deploy_file_refuses_train_backbone(
        a0, a0_official_train, tmp_path):
    model = build(deploy=True, init_cfg=dict(type='Pretrained', checkpoint=str(a0_official_train)))
    model.init_weights()
    assert_outputs_close(a0.ref['train'], run(model, a0.x), FUSED_TOL, 'fused on load')
    path = a0.write(tmp_path / 'deploy.pth', 'timm', 'deploy')
    with pytest.raises(CheckpointError, match='deploy-time .* backbone is train-time; fused weights cannot be split'):
        load_pretrained_backbone(build(), path)


def test_pretrained_argument_still_works_and_log_counts_tensors(a0, a0_official_train, monkeypatch):
    messages = []
    monkeypatch.setattr(loading, 'print_log', lambda msg, **kwargs: messages.append(msg))
    with pytest.warns(UserWarning, match='deprecated'):
        model = build(pretrained=str(a0_official_train))
    model.init_weights()
    assert_outputs_close(a0.ref['train'], run(model, a0.x), EXACT_TOL, 'pretrained=')
    assert len(messages) == 1 and 'loaded 349 tensors' in messages[0] and 'arch A0' in messages[0]
    assert 'dropped 2 (linear.bias, linear.weight)' in messages[0]


# --- unsafe and broken files ----------------------------------------------------------------------------------------
class RunsCode:
    """Unpickling this calls os.mkdir(marker): proof that code ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.mkdir, (self.marker,)


@pytest.fixture
def malicious(tmp_path):
    marker = tmp_path / 'pwned'
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {'stage0.rbr_dense.conv.weight': RunsCode(marker)}}, path)
    return path, marker


def test_malicious_pickle_is_refused_without_running(malicious):
    path, marker = malicious
    for load in (load_backbone_checkpoint, lambda p: load_pretrained_backbone(build(), p)):
        with pytest.raises(CheckpointError) as err:
            load(path)
        assert '\n' not in str(err.value) and str(path) in str(err.value) and 'refused' in str(err.value)
        assert not marker.exists()


def test_truncated_and_foreign_files_name_themselves(a0_official_train, tmp_path):
    truncated = tmp_path / 'truncated.pth'
    truncated.write_bytes(a0_official_train.read_bytes()[:200_000])
    text = tmp_path / 'notes.pth'
    text.write_text('not a checkpoint\n')
    foreign = tmp_path / 'foreign.pth'
    torch.save({'encoder.layer1.weight': torch.zeros(3)}, foreign)
    for path in (truncated, text, foreign, tmp_path / 'absent.pth'):
        with pytest.raises(CheckpointError) as err:
            load_backbone_checkpoint(path)
        assert str(err.value).startswith(str(path)) and '\n' not in str(err.value)


# --- the tool, end to end -------------------------------------------------------------------------------------------
def run_tool(*args):
    return subprocess.run([sys.executable, str(REPO / 'tools' / 'import_pretrained.py'), *map(str, args)],
                          capture_output=True, text=True, cwd=REPO, timeout=120)


def run_tool_here(*args):
    """The tool's script in this process (conftest.run_tool_in_process): its argument parsing and one-line errors
    without the seconds of a new interpreter; the run above (a real process) covers the start as a script."""
    return run_tool_in_process('import_pretrained.py', *args, cwd=REPO)


def test_tool_to_deploy_reproduces_train_outputs(a0, a0_official_train, tmp_path):
    dst = tmp_path / 'out' / 'a0_deploy.pth'
    result = run_tool(a0_official_train, dst, '--to-deploy', '--arch', 'RepVGG-A0')
    assert result.returncode == 0, result.stderr
    for line in ('format: official (train-time)', 'arch: RepVGG-A0', 'tensors: 44 (deploy-time, fused)',
                 'dropped: linear.bias, linear.weight'):
        assert line in result.stdout
    assert not [p for p in dst.parent.iterdir() if p != dst]  # no temporary left over
    state = torch.load(dst, weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values()) and len(state) == 44
    model = build(deploy=True, init_cfg=dict(type='Pretrained', checkpoint=str(dst)))
    model.init_weights()
    assert_outputs_close(a0.ref['train'], run(model, a0.x), FUSED_TOL, 'tool --to-deploy')


def test_tool_fails_cleanly(malicious, tmp_path):
    path, marker = malicious
    truncated = tmp_path / 'truncated.pth'
    truncated.write_bytes(b'PK\x03\x04' + b'\0' * 64)
    for src in (path, truncated):
        dst = tmp_path / f'{src.stem}-out.pth'
        result = run_tool_here(src, dst)
        assert result.returncode != 0 and not dst.exists() and not marker.exists()
        assert result.stderr.count('\n') == 1 and str(src) in result.stderr


def test_tool_wrong_arch_and_same_path(a0_official_train, tmp_path):
    dst = tmp_path / 'x.pth'
    for args, message in (([str(dst), '--arch', 'B0'], 'fit RepVGG-A0'),
                          ([str(a0_official_train)], 'DST is the source file')):
        result = run_tool_here(a0_official_train, *args)
        assert result.returncode == 2 and not dst.exists()
        last = result.stderr.strip().splitlines()[-1]
        assert last.startswith('error: ') and message in last
