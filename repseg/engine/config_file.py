"""Reading a config file with one-line errors (mmengine reports a syntax error without the file's name), and
MMSegmentation's own configs by the name its ``_base_`` lists use: ``mmseg::pidnet/pidnet-s_...py``."""
import copy
import tempfile
from pathlib import Path
from typing import Union

from mmengine.config import Config
from mmengine.utils import get_installed_path

from repseg.utils.io import as_write_error, is_write_failure

ConfigLike = Union[str, Path, Config]


def package_config_path(config: Union[str, Path]) -> Union[str, Path]:
    """``PACKAGE::REL`` (as in ``_base_`` lists) as the path of the config an OpenMMLab package installs; a path is
    returned as it is."""
    if '::' not in str(config):
        return config
    package, rel = str(config).split('::', 1)
    try:
        root = get_installed_path(package)
    except Exception:  # mmengine raises whatever importlib does for a package that is not there
        raise FileNotFoundError(f'{config}: no installed package {package!r}') from None
    return Path(root) / '.mim' / 'configs' / rel


def read_config(config: ConfigLike) -> Config:
    """A Config from a path, or a copy of a Config object. A missing file, a syntax error or a file cut short is
    one ``ValueError`` / ``FileNotFoundError`` line naming the file (and the line, where Python knows it)."""
    if isinstance(config, Config):
        return copy.deepcopy(config)
    config = package_config_path(config)
    if not Path(config).is_file():
        raise FileNotFoundError(f'{config}: no such config file')
    try:
        return Config.fromfile(str(config))
    except SyntaxError as err:
        where = f'line {err.lineno}' if err.lineno else 'somewhere'
        raise ValueError(f'{config} (or a _base_ file it names): not a valid Python config, {err.msg} at {where}; '
                         f'a file cut short or edited by hand?') from None
    except OSError as err:  # mmengine parses a copy of the file that it writes to the temporary folder
        if not is_write_failure(err):
            raise
        raise as_write_error(err, f'{tempfile.gettempdir()} (mmengine\'s copy of {config}, to parse it)') from None
