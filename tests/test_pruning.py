"""Pruning of the plain form (tools/prune.py, repseg.pruning): exact surgery, the written pair, the tools on it."""
import copy
import json
from pathlib import Path

import pytest
import torch
from conftest import REPO, make_tiny, randomize_bn, run_tool_in_process, tools_test_metrics
from mmengine.config import Config
from mmseg.registry import MODELS
from torch import nn

from repseg.apis import init_segmentor, sync_bn_to_bn
from repseg.models import SegLogits, count_macs, reparameterize
from repseg.pruning import prune, prune_segmentor, segmentor_gmacs, zero_channels
from repseg.utils.machine import cpu_flags

#: The tiny config with two grouped blocks (stage 2 block 1 and stage 3 block 1, groups 2).
GROUPED = """_base_ = ['./tiny.py']
model = dict(backbone=dict(arch=dict(group_layer_map={3: 2, 5: 2})))
"""
SHAPE = ('64', '128')


@pytest.fixture(scope='module')
def tiny(tmp_path_factory) -> Path:
    """tiny.py/tiny.pth (conftest.make_tiny) and tiny_g.py/tiny_g.pth, its grouped variant, both in train form."""
    root = tmp_path_factory.mktemp('prune')
    make_tiny(root)
    (root / 'tiny_g.py').write_text(GROUPED)
    torch.manual_seed(1)
    model = MODELS.build(sync_bn_to_bn(Config.fromfile(str(root / 'tiny_g.py')).model.to_dict()))
    model.init_weights()
    randomize_bn(model, seed=1)
    torch.save(dict(meta=dict(iter=0), state_dict=model.state_dict()), root / 'tiny_g.pth')
    return root


def deploy_model(root: Path, name: str) -> nn.Module:
    model = init_segmentor(root / f'{name}.py', root / f'{name}.pth', runtime='eager')
    return reparameterize(model).eval()


def logits(model: nn.Module, x: torch.Tensor) -> list:
    """The decode head's logits and the auxiliary head's (it trains the fine-tuning)."""
    with torch.no_grad():
        return [SegLogits(model, resize=False)(x), model.auxiliary_head(model.extract_feat(x))]


def assert_close(pruned: nn.Module, zeroed: nn.Module, shape=(72, 100)) -> None:
    """Pruned and zeroed logits agree within 1e-5 of max |logit| (issue 26), in both heads."""
    x = torch.randn(2, 3, *shape, generator=torch.Generator().manual_seed(3))
    for ref, out in zip(logits(zeroed, x), logits(pruned, x)):
        assert out.shape == ref.shape
        assert (out - ref).abs().max() <= 1e-5 * ref.abs().max(), (out - ref).abs().max() / ref.abs().max()


@pytest.mark.parametrize('importance', ['l2', 'l1', 'random'])
def test_pruned_network_computes_what_the_zeroed_one_does(tiny, importance):
    """Over grouped blocks, the stage-4-to-PSP coupling and the heads' own convs: the removed channels zeroed in the
    original (conv weights and biases, a head BN's scale and shift) give the pruned network's logits."""
    model = deploy_model(tiny, 'tiny_g')
    before = segmentor_gmacs(model, (64, 128))
    pruned = copy.deepcopy(model)
    removed = prune_segmentor(pruned, 0.6 * before, (64, 128), importance, round_to=4, log=lambda _: None)
    assert 0.58 * before <= segmentor_gmacs(pruned, (64, 128)) <= 0.6 * before
    convs = {n: m for n, m in pruned.named_modules() if isinstance(m, nn.Conv2d)}
    grouped = [m for m in convs.values() if m.groups == 2]
    assert len(grouped) == 2 and all(m.in_channels < full and m.in_channels % 4 == 0
                                     for m, full in zip(grouped, (32, 64)))  # stage 2 and stage 3 widths
    assert convs['decode_head.bottleneck.conv'].out_channels < 32  # the head's own width
    assert convs['decode_head.psp_modules.0.1.conv'].in_channels < 256  # stage 4 into the pyramid
    assert convs['auxiliary_head.convs.0.conv'].in_channels < 64  # stage 3 into the auxiliary head
    assert convs['decode_head.conv_seg'].out_channels == 19
    assert any('bn' in name for name in removed)  # head BNs are zeroed too
    assert_close(pruned, zero_channels(model, removed))


def test_prune_tool_writes_an_ordinary_pair_from_a_train_form_checkpoint(tiny, tmp_path):
    out = tmp_path / 'pruned'
    proc = run_tool_in_process('prune.py', tiny / 'tiny_g.py', tiny / 'tiny_g.pth', '--out-dir', out, '--ratio', '0.3',
                               '--shape', *SHAPE, '--round-to', '4', cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == ['pruned.pth', 'pruned_config.py', 'pruning.json']
    report = json.loads((out / 'pruning.json').read_text())
    assert report['conversion'] and all(d['passed'] for d in report['conversion'])  # the converter's proof ran
    assert report['verification'][0]['passed'] and report['criterion'] == 'l2'
    before, after, target = report['before']['gmacs'], report['after']['gmacs'], report['target_gmacs']
    assert target == pytest.approx(0.7 * before) and abs(after - target) <= 0.02 * target and after < before
    assert report['after']['params'] < report['before']['params']

    # an ordinary config: its backbone lists the widths, it builds the pruned network, the weights load strictly
    cfg = Config.fromfile(str(out / 'pruned_config.py'))
    assert cfg.model.backbone.deploy and cfg.load_from == str(out / 'pruned.pth')
    model = init_segmentor(out / 'pruned_config.py', out / 'pruned.pth', runtime='eager')
    blocks = [model.backbone.stage0] + [b for s in range(1, 5) for b in getattr(model.backbone, f'stage{s}')]
    assert cfg.model.backbone.arch.widths == [b.rbr_reparam.out_channels for b in blocks]
    assert report['widths'] == {n: m.out_channels for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}
    assert count_macs(SegLogits(model, resize=False), torch.empty(1, 3, 64, 128))['gmacs'] == pytest.approx(after)
    # exact against the source with the channels pruning.json names zeroed
    assert_close(model, zero_channels(deploy_model(tiny, 'tiny_g'), report['removed_channels']))


def test_train_form_pruning_keeps_bn_ties_stage_widths_and_converts_exactly(tiny, tmp_path):
    """--form train: the pair stays in train form (BNs, identity branches), each stage has one width (the identity
    adds tie its blocks), it equals the zeroed original, and convert_to_deploy.py converts it with its proof."""
    out = tmp_path / 'pruned'
    proc = run_tool_in_process('prune.py', tiny / 'tiny_g.py', tiny / 'tiny_g.pth', '--out-dir', out, '--ratio', '0.4',
                               '--shape', *SHAPE, '--round-to', '4', '--form', 'train', cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((out / 'pruning.json').read_text())
    assert report['form'] == 'train' and report['conversion'] == [] and report['verification'][0]['passed']
    assert abs(report['after']['gmacs'] - 0.6 * report['before']['gmacs']) <= 0.02 * 0.6 * report['before']['gmacs']
    cfg = Config.fromfile(str(out / 'pruned_config.py'))
    assert not cfg.model.backbone.get('deploy', False)
    model = init_segmentor(out / 'pruned_config.py', out / 'pruned.pth', runtime='eager').eval()
    for stage in range(1, 5):
        blocks = list(getattr(model.backbone, f'stage{stage}'))
        assert len({b.rbr_dense.conv.out_channels for b in blocks}) == 1
        assert all(b.rbr_identity is not None for b in blocks[1:])  # identity branches survive
    assert model.backbone.stage4[0].rbr_dense.conv.out_channels < 256
    assert segmentor_gmacs(model, (64, 128)) == pytest.approx(report['after']['gmacs'])  # deploy GMACs, 1x1 folded
    original = init_segmentor(tiny / 'tiny_g.py', tiny / 'tiny_g.pth', runtime='eager').eval()
    assert_close(model, zero_channels(original, report['removed_channels']))

    proc = run_tool_in_process('convert_to_deploy.py', out / 'pruned_config.py', out / 'pruned.pth', '--out-dir',
                               tmp_path / 'deploy', cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    deployed = init_segmentor(tmp_path / 'deploy/deploy_config.py', tmp_path / 'deploy/deploy.pth', runtime='eager')
    assert segmentor_gmacs(deployed, (64, 128)) == pytest.approx(report['after']['gmacs'])  # the proof passed: rc 0
    with pytest.raises(ValueError, match='deploy-form checkpoint has no train-time branches; --form train needs'):
        prune(tmp_path / 'deploy/deploy_config.py', tmp_path / 'deploy/deploy.pth', tmp_path / 'again', ratio=0.3,
              shape=(64, 128), form='train', log=lambda _: None)
    assert not (tmp_path / 'again').exists()


@pytest.mark.parametrize('args, message', [
    (['--ratio', '1.5'], '--ratio 1.5: expected the share of GMACs to remove, between 0 and 1'),
    (['--target-gmacs', '1000'], '--target-gmacs 1000: expected between 0 and the model\'s'),
    (['--ratio', '0.3', '--importance', 'fpgm'], "argument --importance: invalid choice: 'fpgm'"),
    (['--ratio', '0.3', '--target-gmacs', '1'], 'argument --target-gmacs: not allowed with argument --ratio'),
    (['--ratio', '0.3', '--form', 'plain'], "argument --form: invalid choice: 'plain'"),
])
def test_bad_input_is_one_line_and_writes_nothing(tiny, tmp_path, args, message):
    out = tmp_path / 'pruned'
    proc = run_tool_in_process('prune.py', tiny / 'tiny.py', tiny / 'tiny.pth', '--out-dir', out, '--shape', *SHAPE,
                               *args, cwd=REPO)
    assert proc.returncode == 2 and message in proc.stderr.strip().splitlines()[-1], proc.stderr[-2000:]
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == []


def test_the_pruned_pair_goes_through_every_tool(tiny, tmp_path):
    """Fine-tuning from load_from, test, infer, ONNX export, int8 and bf16 folders, the benchmark."""
    out = tmp_path / 'pruned'
    proc = run_tool_in_process('convert_to_deploy.py', tiny / 'tiny.py', tiny / 'tiny.pth', '--out-dir',
                               tmp_path / 'deploy', cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = run_tool_in_process('prune.py', tmp_path / 'deploy/deploy_config.py', tmp_path / 'deploy/deploy.pth',
                               '--out-dir', out, '--target-gmacs', '0.03', '--shape', *SHAPE, '--round-to', '4',
                               cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((out / 'pruning.json').read_text())['conversion'] == []  # a deploy input is pruned as it is
    config, checkpoint = out / 'pruned_config.py', out / 'pruned.pth'

    proc = run_tool_in_process('train.py', config, '--work-dir', tmp_path / 'ft', '--cfg-options',
                               'train_cfg.max_iters=2', 'train_cfg.val_interval=2', cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = next((tmp_path / 'ft').rglob('*.log')).read_text()
    assert f'Load checkpoint from {checkpoint}' in log and (tmp_path / 'ft' / 'iter_2.pth').is_file()
    assert 0 <= tools_test_metrics(config, tmp_path / 'ft' / 'iter_2.pth', tmp_path / 'test')[0] <= 100

    image = next((tiny / 'data').rglob('*_leftImg8bit.png'))
    runs = [('infer.py', config, checkpoint, image, '--out-dir', tmp_path / 'masks'),
            ('export_onnx.py', config, checkpoint, '--out', tmp_path / 'pruned.onnx', '--shape', *SHAPE),
            ('quantize.py', config, checkpoint, '--out-dir', tmp_path / 'int8', '--num-calib', '2')]
    if {'avx512_bf16', 'amx_bf16'} & set(cpu_flags()):
        runs.append(('quantize.py', config, checkpoint, '--out-dir', tmp_path / 'bf16', '--precision', 'bf16'))
    runs.append(('benchmark.py', '--configs', config, '--shape', *SHAPE, '--repeats', '1', '--warmup', '1',
                 '--runtime', 'eager,onnxruntime', '--backbone', 'none', '--out-dir', tmp_path / 'bench'))
    for tool, *args in runs:
        proc = run_tool_in_process(tool, *args, cwd=REPO)
        assert proc.returncode == 0, (tool, proc.stderr[-3000:])
    assert (tmp_path / 'masks' / f'{image.stem}_overlay.png').is_file() and (tmp_path / 'pruned.onnx').is_file()
    assert (tmp_path / 'int8' / 'int8.pth').is_file()
    rows = json.loads((tmp_path / 'bench' / 'benchmark.json').read_text())
    assert {(r['model'], r['form']) for r in rows if r.get('model') == 'pruned'} == {('pruned', 'deploy')}
