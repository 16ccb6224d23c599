"""The official custom L2 (repseg.custom_l2) against an independent computation of its formula, and the config switch
(CustomL2OptimWrapperConstructor): the term in the training loss, weight decay off for exactly the kernels it covers.
"""
import copy
import itertools

import numpy as np
import pytest
import torch
from conftest import SAMPLE_CONFIG
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

import repseg
from repseg.apis import sync_bn_to_bn
from repseg.models.backbones import QARepVGGBlock, RepVGGBlock
from repseg.models.custom_l2 import LOSS_KEY, add_custom_l2_loss, covered_kernels

CONSTRUCTOR = 'CustomL2OptimWrapperConstructor'


def randomize(block: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Random kernels and BN statistics, negative gammas included (the formula must not assume gamma > 0)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in block.modules():
            if isinstance(m, torch.nn.Conv2d):
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen))
            elif isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=gen))
                m.running_var.copy_(torch.rand(n, generator=gen) * 2 + 0.1)
                m.weight.copy_(torch.randn(n, generator=gen))
                m.bias.copy_(torch.randn(n, generator=gen))
    return block


def scale(bn) -> np.ndarray:
    return (bn.weight / (bn.running_var + bn.eps).sqrt()).detach().double().numpy()


def reference(block: RepVGGBlock, identity: bool) -> float:
    """The formula of FACTS.md 7 (and its identity-corrected form) tap by tap, in float64 numpy."""
    k3 = block.rbr_dense.conv.weight.detach().double().numpy()
    k1 = block.rbr_1x1.conv.weight.detach().double().numpy()
    t3, t1 = scale(block.rbr_dense.bn), scale(block.rbr_1x1.bn)
    tid = scale(block.rbr_identity) if identity and block.rbr_identity is not None else None
    cout, cin_per_group = k3.shape[:2]
    total = 0.0
    for o, i in itertools.product(range(cout), range(cin_per_group)):
        for u, v in itertools.product(range(3), range(3)):
            if (u, v) != (1, 1):
                total += k3[o, i, u, v] ** 2
        centre = k3[o, i, 1, 1] * t3[o] + k1[o, i, 0, 0] * t1[o]
        if tid is not None and i == o % cin_per_group:  # the identity maps channel o to itself
            centre += tid[o]
        total += centre ** 2 / (t3[o] ** 2 + t1[o] ** 2)
    return total


BLOCKS = {  # (in, out, stride, dilation, groups): with and without identity, grouped, dilated
    'identity': (8, 8, 1, 1, 1), 'identity-g2-d2': (8, 8, 1, 2, 2), 'identity-g4': (16, 16, 1, 1, 4),
    'stride2': (8, 16, 2, 1, 1), 'widen-g2': (8, 16, 1, 1, 2), 'stride2-g4': (16, 16, 2, 3, 4)}


@pytest.mark.parametrize('identity', [False, True])
@pytest.mark.parametrize('name', sorted(BLOCKS))
def test_block_term_equals_the_formula(name, identity):
    cin, cout, stride, dilation, groups = BLOCKS[name]
    for seed in range(3):
        block = randomize(RepVGGBlock(cin, cout, stride, dilation, groups), seed).train()
        assert repseg.custom_l2(block, identity=identity).item() == pytest.approx(reference(block, identity), rel=1e-5)


def test_identity_term_differs_only_where_an_identity_exists():
    with_id = randomize(RepVGGBlock(8, 8), 0)
    without = randomize(RepVGGBlock(8, 16), 0)
    assert repseg.custom_l2(with_id, identity=True).item() != pytest.approx(repseg.custom_l2(with_id).item())
    assert repseg.custom_l2(without, identity=True).item() == repseg.custom_l2(without).item()


@pytest.mark.parametrize('groups', [1, 2])
def test_identity_term_penalizes_the_deploy_kernels_centre_tap(groups):
    """identity=True is the deploy kernel's centre tap (all three branches) over t3^2 + t1^2, plus the ring."""
    block = randomize(RepVGGBlock(8, 8, groups=groups), 1)
    kernel, _ = block.get_equivalent_kernel_bias()
    t3 = block.rbr_dense.bn.weight / (block.rbr_dense.bn.running_var + block.rbr_dense.bn.eps).sqrt()
    t1 = block.rbr_1x1.bn.weight / (block.rbr_1x1.bn.running_var + block.rbr_1x1.bn.eps).sqrt()
    k3 = block.rbr_dense.conv.weight
    ring = (k3 ** 2).sum() - (k3[:, :, 1, 1] ** 2).sum()
    expected = ring + (kernel[:, :, 1, 1] ** 2 / (t3 ** 2 + t1 ** 2)[:, None]).sum()
    assert repseg.custom_l2(block, identity=True).item() == pytest.approx(expected.item(), rel=1e-5)


def test_term_is_the_least_branch_l2_for_the_same_centre_tap():
    """Cauchy-Schwarz: custom L2 <= the ordinary L2 of both kernels, with equality for (K3c, K1) ~ (t3, t1)."""
    block = randomize(RepVGGBlock(8, 16), 2)

    def ordinary():
        return sum((block.get_parameter(k) ** 2).sum() for k in ('rbr_dense.conv.weight', 'rbr_1x1.conv.weight')).item()

    assert repseg.custom_l2(block).item() < ordinary()
    t3 = block.rbr_dense.bn.weight / (block.rbr_dense.bn.running_var + block.rbr_dense.bn.eps).sqrt()
    t1 = block.rbr_1x1.bn.weight / (block.rbr_1x1.bn.running_var + block.rbr_1x1.bn.eps).sqrt()
    with torch.no_grad():
        c = torch.randn(16, 8)
        block.rbr_dense.conv.weight[:, :, 1, 1] = c * t3[:, None]
        block.rbr_1x1.conv.weight[:, :, 0, 0] = c * t1[:, None]
    assert repseg.custom_l2(block).item() == pytest.approx(ordinary(), rel=1e-5)


def test_gradient_reaches_the_kernels_only():
    block = randomize(RepVGGBlock(8, 8), 3)
    repseg.custom_l2(block, identity=True).backward()
    assert block.rbr_dense.conv.weight.grad.abs().sum() > 0 and block.rbr_1x1.conv.weight.grad.abs().sum() > 0
    bn_params = [p for m in block.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
                 for p in m.parameters()]
    assert bn_params and all(p.grad is None for p in bn_params)


def test_model_sum_covers_train_form_repvgg_blocks_only():
    torch.manual_seed(0)
    arch = dict(num_blocks=(1, 2, 2, 1), width_factor=(0.25,) * 4, group_layer_map={2: 2})
    backbone = MODELS.build(dict(type='RepVGG', arch=arch))
    randomize(backbone, 4)
    plus = randomize(RepVGGBlock(16, 16, use_post_se=True), 5)  # a RepVGGplus block: covered too
    blocks = [m for m in backbone.modules() if isinstance(m, RepVGGBlock)] + [plus]
    assert len(blocks) == 8
    model = torch.nn.ModuleDict(dict(backbone=backbone, plus=plus, qa=QARepVGGBlock(8, 8),
                                     other=torch.nn.Conv2d(3, 8, 3)))
    for identity in (False, True):
        expected = sum(reference(b, identity) for b in blocks)
        assert repseg.custom_l2(model, identity=identity).item() == pytest.approx(expected, rel=1e-5)
    assert len(covered_kernels(model)) == 16
    assert all(name.endswith(('rbr_dense.conv.weight', 'rbr_1x1.conv.weight')) for name in covered_kernels(model))
    blocks[3].switch_to_deploy()  # deploy-form blocks drop out
    assert repseg.custom_l2(model).item() == pytest.approx(sum(reference(b, False) for b in blocks if not b.deploy),
                                                           rel=1e-5)
    assert repseg.custom_l2(QARepVGGBlock(8, 8)).item() == 0 and not covered_kernels(QARepVGGBlock(8, 8))


# --- the config switch ---------------------------------------------------------------------------------------------
def sample_config(extra: str, tmp_path) -> Config:
    path = tmp_path / 'cfg.py'
    path.write_text(f"_base_ = ['{SAMPLE_CONFIG}']\n{extra}\n")
    return Config.fromfile(str(path))


def segmentor(cfg: Config):
    torch.manual_seed(0)
    model = MODELS.build(sync_bn_to_bn(cfg.model.to_dict()))
    model.data_preprocessor.size = (64, 64)  # pad training batches to 64x64, not the 256x256 crop: a cheap step
    return model


def batch(model, size=(64, 64), seed=0):
    gen = torch.Generator().manual_seed(seed)
    inputs, samples = [], []
    for _ in range(2):
        inputs.append(torch.randint(0, 256, (3, *size), generator=gen, dtype=torch.uint8))
        sample = SegDataSample(metainfo=dict(img_shape=size, ori_shape=size, pad_shape=size))
        sample.gt_sem_seg = PixelData(data=torch.randint(0, 19, (1, *size), generator=gen))
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def settings(optim_wrapper, model):
    """Parameter name -> (lr, weight decay) as the optimizer will apply them."""
    names = {id(p): n for n, p in model.named_parameters()}
    out = {}
    for group in optim_wrapper.optimizer.param_groups:
        for p in group['params']:
            out[names[id(p)]] = (group['lr'], group['weight_decay'])
    return out


PARAMWISE = {'none': None, 'norm-and-custom-keys': dict(norm_decay_mult=0.0,
                                                        custom_keys={'decode_head': dict(lr_mult=10.0)})}


@pytest.mark.parametrize('paramwise', sorted(PARAMWISE))
def test_one_config_line_switches_it_on(tmp_path, paramwise):
    extra = f"optim_wrapper = dict(constructor='{CONSTRUCTOR}', paramwise_cfg={PARAMWISE[paramwise]!r})"
    cfg = sample_config(extra, tmp_path)
    assert cfg.optim_wrapper.optimizer.weight_decay == 1e-4  # inherited from the sample config
    model = segmentor(cfg)
    plain = copy.deepcopy(model)  # same weights, default constructor, no hook
    plain_cfg = copy.deepcopy(cfg.optim_wrapper)
    plain_cfg.pop('constructor')
    if PARAMWISE[paramwise] is None:
        plain_cfg.pop('paramwise_cfg')
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)  # what mmengine's Runner does

    # weight decay: 0 for exactly the covered kernels, everything else as the default constructor sets it
    covered = set(covered_kernels(model))
    assert len(covered) == 2 * 22 and all(n.startswith('backbone.') for n in covered)
    got, expected = settings(optim_wrapper, model), settings(build_optim_wrapper(plain, plain_cfg), plain)
    assert set(got) == set(expected)
    for name, (lr, wd) in got.items():
        assert (lr, wd) == ((expected[name][0], 0.0) if name in covered else expected[name]), name
    assert any(wd > 0 for _, wd in got.values())

    # the loss: its own key, coefficient = the optimizer's weight decay, the other losses unchanged
    data = model.data_preprocessor(batch(model), training=False)  # training=False: no padding to the crop size
    model.eval()  # no dropout, BN on running statistics: both forwards deterministic
    plain.eval()
    losses = model(**data, mode='loss')
    reference = plain(**data, mode='loss')
    assert set(losses) == set(reference) | {LOSS_KEY}
    assert all(torch.equal(losses[k], reference[k]) for k in reference)
    assert losses[LOSS_KEY].item() == pytest.approx(1e-4 * 0.5 * repseg.custom_l2(model).item(), rel=1e-6)
    assert losses[LOSS_KEY].requires_grad
    # tensor and predict modes are untouched
    assert torch.equal(model(data['inputs'], mode='tensor'), plain(data['inputs'], mode='tensor'))

    # a training step optimizes and logs it
    model.train()
    log_vars = model.train_step(batch(model, seed=1), optim_wrapper)
    assert LOSS_KEY in log_vars and log_vars[LOSS_KEY].item() > 0
    parts = [v.item() for k, v in log_vars.items() if 'loss' in k and k != 'loss']
    assert len(parts) == 3 and log_vars['loss'].item() == pytest.approx(sum(parts), rel=1e-5)  # decode, aux, custom


def test_options_coefficient_and_identity(tmp_path):
    cfg = sample_config(f"optim_wrapper = dict(constructor='{CONSTRUCTOR}', "
                        f"paramwise_cfg=dict(custom_l2=dict(coefficient=1e-3, identity=True)))", tmp_path)
    model = segmentor(cfg).eval()
    build_optim_wrapper(model, cfg.optim_wrapper)
    build_optim_wrapper(model, cfg.optim_wrapper)  # a second build replaces the hook, it does not add another
    data = model.data_preprocessor(batch(model), training=False)
    loss = model(**data, mode='loss')[LOSS_KEY]
    assert loss.item() == pytest.approx(1e-3 * 0.5 * repseg.custom_l2(model, identity=True).item(), rel=1e-6)
    assert len(model._forward_hooks) == 1
    add_custom_l2_loss(model, 2e-3)
    assert model(**data, mode='loss')[LOSS_KEY].item() == pytest.approx(2e-3 * 0.5 * repseg.custom_l2(model).item(),
                                                                        rel=1e-6)


@pytest.mark.parametrize('extra, message', [
    ("model = dict(backbone=dict(block='qarepvgg'))\noptim_wrapper = dict(constructor='{c}')",
     'has no train-form RepVGG block'),
    ("optim_wrapper = dict(constructor='{c}', optimizer=dict(weight_decay=0))", 'needs a positive coefficient'),
    ("optim_wrapper = dict(constructor='{c}', paramwise_cfg=dict(custom_l2=dict(coef=1)))", 'expected a dict'),
])
def test_misconfiguration_is_a_one_line_error(tmp_path, extra, message):
    cfg = sample_config(extra.format(c=CONSTRUCTOR), tmp_path)
    with pytest.raises(ValueError, match=message):
        build_optim_wrapper(segmentor(cfg), cfg.optim_wrapper)
