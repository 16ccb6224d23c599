from .io import CheckpointError, atomic_torch_save, atomic_write, safe_torch_load, unwrap_state_dict

__all__ = ['CheckpointError', 'atomic_write', 'atomic_torch_save', 'safe_torch_load', 'unwrap_state_dict']
