"""DualRepVGG, the real-time family: shapes and multiply-adds of the published sizes, exact re-parameterization, and
a tiny DualRepVGG segmentor through every tool (train, convert with its proof, test, infer, export, quantize,
benchmark; bf16 folders and folder rows in the benchmark take the same path as for RepVGG, tested there)."""
import copy
import json
from pathlib import Path

import pytest
import torch
from conftest import REPO, randomize_bn, run_tool_in_process, tools_test_metrics
from mmengine.config import Config
from mmseg.registry import MODELS

import repseg
from repseg.apis import sync_bn_to_bn
from repseg.datasets import make_sample_dataset
from repseg.models import DualRepVGG, count_macs
from repseg.models.backbones import dual_block_widths, dual_out_channels

TINY_ARCH = dict(widths=(8, 16, 16, 32, 64), trunk_blocks=(1, 1), dual_blocks=(2, 1))
TINY = """_base_ = ['{repo}/configs/_base_/models/dualrepvgg.py', 'mmseg::_base_/datasets/cityscapes.py',
          'mmseg::_base_/default_runtime.py', '{repo}/configs/_base_/schedules/realtime_2000i_cpu.py']
data_root = '{data}/'
model = dict(data_preprocessor=dict(size=(64, 128)),
             backbone=dict(arch=dict(_delete_=True, widths=(8, 16, 16, 32, 64), trunk_blocks=(1, 1),
                                     dual_blocks=(2, 1))),
             decode_head=dict(in_channels=16, channels=8), auxiliary_head=dict(in_channels=16, channels=8))
pipeline = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'), dict(type='PackSegInputs')]
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
                        dataset=dict(data_root=data_root, pipeline=pipeline))
val_dataloader = dict(num_workers=0, persistent_workers=False, dataset=dict(data_root=data_root, pipeline=pipeline))
test_dataloader = val_dataloader
"""


def randomized(model: torch.nn.Module) -> torch.nn.Module:
    randomize_bn(model)
    return model.eval()


@pytest.mark.parametrize('arch, gmacs, width', [('t', 4.72, 64), ('s', 7.00, 96), ('m', 11.69, 128)])
def test_published_sizes_give_two_outputs_at_one_eighth_and_their_multiply_adds(arch, gmacs, width):
    backbone = repseg.reparameterize(DualRepVGG(arch).eval())  # deploy GMACs, what inference runs
    x = torch.randn(1, 3, 512, 1024)
    outs = backbone(x)
    assert [tuple(o.shape) for o in outs] == [(1, width, 64, 128)] * 2

    class Last(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = backbone

        def forward(self, x):
            return self.backbone(x)[-1]
    assert count_macs(Last(), x)['gmacs'] == pytest.approx(gmacs, abs=0.01)


@pytest.mark.parametrize('block', ['repvgg', 'qarepvgg'])
def test_deploy_form_equals_train_form(block):
    torch.manual_seed(0)
    train = randomized(DualRepVGG(TINY_ARCH, block=block))
    x = torch.randn(2, 3, 96, 160)
    deploy = repseg.reparameterize(copy.deepcopy(train))
    assert deploy.deploy and not train.deploy
    assert not any('rbr_dense' in k for k in deploy.state_dict())
    with torch.no_grad():
        for ref, out in zip(train(x), deploy(x)):
            assert (out - ref).abs().max() <= 1e-5 * ref.abs().max()
    built = DualRepVGG(TINY_ARCH, block=block, deploy=True)
    assert built.state_dict().keys() == deploy.state_dict().keys()  # what deploy_config.py builds


@pytest.mark.parametrize('kwargs, message', [
    (dict(arch='xl'), r"^DualRepVGG arch='xl': expected one of t, s, m or a dict$"),
    (dict(arch=dict(TINY_ARCH, widths=(8, 16))), r'expected 5 widths, 2 trunk_blocks'),
    (dict(out_indices=(2,)), r'^DualRepVGG out_indices=\(2,\): expected 0 and/or 1$'),
    (dict(block='resnet'), r"^DualRepVGG block='resnet': expected one of repvgg, qarepvgg$")])
def test_bad_arguments_are_one_line(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DualRepVGG(**kwargs)


@pytest.fixture(scope='module')
def tiny(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp('dual')
    make_sample_dataset(root / 'data', num_train=4, num_val=2, size=(128, 64), seed=0)
    (root / 'tiny.py').write_text(TINY.format(repo=REPO, data=root / 'data'))
    torch.manual_seed(0)
    model = MODELS.build(sync_bn_to_bn(Config.fromfile(str(root / 'tiny.py')).model.to_dict()))
    model.init_weights()
    randomize_bn(model)
    torch.save(dict(meta=dict(iter=0), state_dict=model.state_dict()), root / 'tiny.pth')
    return root


def test_every_tool_takes_a_dual_repvgg_segmentor(tiny, tmp_path):
    config = tiny / 'tiny.py'
    proc = run_tool_in_process('train.py', config, '--work-dir', tmp_path / 'wd', '--cfg-options',
                               'train_cfg.max_iters=2', 'train_cfg.val_interval=2', cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    trained = tmp_path / 'wd' / 'iter_2.pth'
    proc = run_tool_in_process('convert_to_deploy.py', config, trained, '--out-dir', tmp_path / 'deploy', '--shape',
                               '64', '128', cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'random(seed=0) 1x19x8x16' in proc.stdout and '-> OK' in proc.stdout  # the proof, on the 1/8 logits
    deploy_config, deploy = tmp_path / 'deploy' / 'deploy_config.py', tmp_path / 'deploy' / 'deploy.pth'
    assert tools_test_metrics(deploy_config, deploy, tmp_path / 't1') == tools_test_metrics(config, trained,
                                                                                            tmp_path / 't2')
    image = next((tiny / 'data').rglob('*_leftImg8bit.png'))
    runs = [('infer.py', deploy_config, deploy, image, '--out-dir', tmp_path / 'masks'),
            ('export_onnx.py', deploy_config, deploy, '--out', tmp_path / 'dual.onnx', '--shape', '64', '128'),
            ('quantize.py', config, trained, '--out-dir', tmp_path / 'int8', '--num-calib', '2', '--max-drop', '100')]
    runs.append(('benchmark.py', '--configs', config, '--shape', '64', '128', '--repeats', '1', '--runtime',
                 'eager,onnxruntime', '--backbone', 'none', '--out-dir', tmp_path / 'bench'))
    for tool, *args in runs:
        proc = run_tool_in_process(tool, *args, cwd=REPO)
        assert proc.returncode == 0, (tool, proc.stderr[-3000:])
    assert (tmp_path / 'masks' / f'{image.stem}_overlay.png').is_file() and (tmp_path / 'dual.onnx').is_file()
    report = json.loads((tmp_path / 'int8' / 'quantization.json').read_text())
    assert report['deploy_conversion'] and all(d['passed'] for d in report['deploy_conversion'])  # the proof first
    rows = json.loads((tmp_path / 'bench' / 'benchmark.json').read_text())
    assert {(r['form'], r['runtime']) for r in rows if r['model'] == 'tiny'} == {
        ('train', 'eager'), ('deploy', 'eager'), ('deploy', 'onnxruntime')}
    deploy_row = next(r for r in rows if (r['model'], r['form'], r['runtime']) == ('tiny', 'deploy', 'eager'))
    assert deploy_row['reparam_parity']['passed'] and deploy_row['speedup_vs_train'] > 0


@pytest.mark.parametrize('form', ['deploy', 'train'])
def test_prune_writes_a_dual_repvgg_config_block_by_block(tiny, tmp_path, form):
    """tools/prune.py on DualRepVGG: the pruned network (built from the written config, loaded strictly) equals the
    original with the removed channels zeroed (the tool's proof), with fewer GMACs and every width listed."""
    out = tmp_path / 'pruned'
    proc = run_tool_in_process('prune.py', tiny / 'tiny.py', tiny / 'tiny.pth', '--ratio', '0.3', '--round-to', '4',
                               '--shape', '64', '128', '--form', form, '--out-dir', out, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((out / 'pruning.json').read_text())
    assert report['verification'] and all(d['passed'] for d in report['verification'])
    assert report['after']['gmacs'] == pytest.approx(0.7 * report['before']['gmacs'], rel=0.02)
    cfg = Config.fromfile(str(out / 'pruned_config.py'))
    arch = cfg.model.backbone.arch
    assert len(arch['block_widths']) == len(dual_block_widths(TINY_ARCH)) and arch['block_widths'] != \
        dual_block_widths(TINY_ARCH)
    assert cfg.model.decode_head.in_channels == dual_out_channels(arch)[1]
    assert cfg.model.auxiliary_head.in_channels == dual_out_channels(arch)[0]


def test_block_widths_of_the_wrong_length_are_one_line():
    with pytest.raises(ValueError, match=r'^DualRepVGG arch block_widths has 3 entries: expected 10 positive widths'):
        DualRepVGG(dict(TINY_ARCH, block_widths=[8, 8, 8]))


def test_a_zoo_config_of_mmsegmentation_is_read_by_its_package_name():
    from repseg.apis import model_config
    cfg = model_config('mmseg::ddrnet/ddrnet_23-slim_in1k-pre_2xb6-120k_cityscapes-1024x1024.py')
    assert cfg.model.backbone.type == 'DDRNet' and cfg.default_scope == 'mmseg'
    with pytest.raises(FileNotFoundError, match=r"^mmfoo::x\.py: no installed package 'mmfoo'$"):
        model_config('mmfoo::x.py')


def test_camvid_baselines_train_as_dual_repvgg_does():
    """The equal budget: same data, pipeline (PIDNet adds its boundary labels), crops, batch, iterations, schedule."""
    from repseg.apis import read_config
    ours = read_config(REPO / 'configs' / 'camvid' / 'realtime_camvid.py')
    for name in ('ddrnet-23-slim_camvid.py', 'pidnet-s_camvid.py'):
        other = read_config(REPO / 'configs' / 'camvid' / name)
        for key in ('optim_wrapper', 'param_scheduler', 'train_cfg', 'randomness', 'val_dataloader'):
            assert other[key] == ours[key], (name, key)
        mine, theirs = ours.train_dataloader, other.train_dataloader
        assert theirs.batch_size == mine.batch_size and theirs.dataset.data_root == mine.dataset.data_root
        assert [t for t in theirs.dataset.pipeline if t.type != 'GenerateEdge'] == mine.dataset.pipeline
        assert other.model.data_preprocessor.size == ours.model.data_preprocessor.size == (256, 256)
        assert other.model.backbone.get('init_cfg') is None  # from scratch, as DualRepVGG


def test_cityscapes_recipe_is_that_of_mmsegmentation_ddrnet():
    from repseg.apis import read_config
    ours = read_config(REPO / 'configs' / 'realtime_cityscapes.py')
    ddrnet = read_config('mmseg::ddrnet/ddrnet_23-slim_in1k-pre_2xb6-120k_cityscapes-1024x1024.py')
    assert ours.model.data_preprocessor.size == ddrnet.model.data_preprocessor.size == (1024, 1024)
    assert ours.train_dataloader.batch_size == ddrnet.train_dataloader.batch_size == 6
    assert ours.optim_wrapper.optimizer == ddrnet.optim_wrapper.optimizer
    assert ours.param_scheduler == ddrnet.param_scheduler and ours.train_cfg.max_iters == 120000
    assert ours.train_dataloader.dataset.pipeline == ddrnet.train_dataloader.dataset.pipeline
    assert ours.model.backbone.get('init_cfg') is None and ours.model.decode_head.loss_decode.class_weight
