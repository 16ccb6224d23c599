from .fusion import bn_scale_shift, fuse_conv_bn, fuse_conv_bn_pairs, identity_kernel, pad_1x1_to_3x3, scale_shift

__all__ = ['bn_scale_shift', 'fuse_conv_bn', 'fuse_conv_bn_pairs', 'identity_kernel', 'pad_1x1_to_3x3', 'scale_shift']
