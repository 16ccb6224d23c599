"""Deployment: train-form segmentor -> plain (re-parameterized) backbone with the heads unchanged, proven equal,
and ONNX export of the result."""
from .config_io import config_text, deploy_config
from .convert import DEPLOY_CHECKPOINT, DEPLOY_CONFIG, AlreadyDeployed, Conversion, VerificationError, convert_to_deploy
from .forms import config_form, state_dict_form
from .onnx_export import OnnxExport, TensorModeLogits, export_onnx, load_deploy_segmentor
from .verify import LogitDiff, compare_logits, verify_models

__all__ = ['DEPLOY_CHECKPOINT', 'DEPLOY_CONFIG', 'AlreadyDeployed', 'Conversion', 'LogitDiff', 'VerificationError',
           'OnnxExport', 'TensorModeLogits', 'compare_logits', 'config_form', 'config_text', 'convert_to_deploy',
           'deploy_config', 'export_onnx', 'load_deploy_segmentor', 'state_dict_form', 'verify_models']
