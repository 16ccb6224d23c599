"""Deployment: train-form segmentor -> plain (re-parameterized) backbone with the heads unchanged, proven equal,
and ONNX export of the result."""
from .config_io import config_text, deploy_config
from .convert import (DEPLOY_CHECKPOINT, DEPLOY_CONFIG, AlreadyDeployed, Conversion, VerificationError, carried_meta,
                      convert_to_deploy, raise_if_failed)
from .onnx_export import OnnxExport, export_onnx, load_deploy_segmentor
from .verify import random_input, verify_models

__all__ = ['DEPLOY_CHECKPOINT', 'DEPLOY_CONFIG', 'AlreadyDeployed', 'Conversion', 'OnnxExport', 'VerificationError',
           'carried_meta', 'config_text', 'convert_to_deploy', 'deploy_config', 'export_onnx', 'load_deploy_segmentor',
           'raise_if_failed', 'random_input', 'verify_models']
