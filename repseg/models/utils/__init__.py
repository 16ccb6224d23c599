from .fusion import fuse_conv_bn, identity_kernel, pad_1x1_to_3x3

__all__ = ['fuse_conv_bn', 'identity_kernel', 'pad_1x1_to_3x3']
