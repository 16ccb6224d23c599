"""One CLI style (docs/cli.md), checked on every tool's real parser: help on every argument, MMSegmentation's
positional names, ``--out-dir`` for a folder and ``--out`` for a file, ``--shape H W`` with one default."""
import argparse
import runpy
import sys
from pathlib import Path

import pytest
from conftest import REPO

from repseg.engine.cli import DEFAULT_SHAPE

TOOLS = sorted(p.name for p in (REPO / 'tools').glob('*.py'))
POSITIONALS = {'config', 'checkpoint', 'inputs', 'src', 'dst', 'data_root', 'reports', 'out', 'benchmark'}
FILE_OUTPUTS = {'export_onnx.py', 'kernel_ranges.py', 'speed_accuracy.py'}  # their --out is a file
#: make_sample_data's --shape is the size of the images it draws, not a model's input size.
OWN_SHAPE_DEFAULT = {'make_sample_data.py': (256, 512)}


class Captured(BaseException):
    """Raised instead of parsing: carries the parser a tool built (not an Exception: the CLI boundary lets it by)."""


def tool_parser(tool: str, monkeypatch) -> argparse.ArgumentParser:
    def capture(self, args=None, namespace=None):
        raise Captured(self)
    monkeypatch.setattr(argparse.ArgumentParser, 'parse_args', capture)
    monkeypatch.setattr(sys, 'argv', [str(REPO / 'tools' / tool)])
    with pytest.raises(Captured) as caught:
        runpy.run_path(str(REPO / 'tools' / tool), run_name='__main__')
    return caught.value.args[0]


def test_every_tool_is_walked():
    assert len(TOOLS) >= 14 and 'train.py' in TOOLS and 'benchmark.py' in TOOLS


@pytest.mark.parametrize('tool', TOOLS)
def test_every_argument_follows_the_cli_style(tool, monkeypatch):
    parser = tool_parser(tool, monkeypatch)
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        name = action.option_strings[0] if action.option_strings else action.dest
        assert action.help and action.help != argparse.SUPPRESS, f'{tool}: {name} has no help'
        if not action.option_strings:
            assert action.dest in POSITIONALS, f'{tool}: positional {action.dest}'
        if action.dest == 'out_dir':
            assert action.option_strings[0] == '--out-dir', f'{tool}: a folder output is --out-dir'
        elif '--out' in action.option_strings:
            assert tool in FILE_OUTPUTS, f'{tool}: --out is a file output; a folder is --out-dir'
        if '--shape' in action.option_strings:
            assert action.metavar == ('H', 'W') and action.nargs == 2
            assert tuple(action.default) == OWN_SHAPE_DEFAULT.get(tool, DEFAULT_SHAPE), tool


@pytest.mark.parametrize('tool, args', [('test.py', ['c.py', 'k.pth', '--out', 'pred']),
                                        ('benchmark.py', ['--out', 'bench'])])
def test_the_old_folder_spelling_still_works_and_says_so(tool, args, monkeypatch, capsys):
    parser = tool_parser(tool, monkeypatch)
    monkeypatch.undo()  # the real parse_args again
    assert Path(argparse.ArgumentParser.parse_args(parser, args).out_dir).name in ('pred', 'bench')
    assert capsys.readouterr().err == 'warning: --out is deprecated here; use --out-dir\n'


def test_sample_data_takes_shape_height_first_and_the_old_size_width_first(monkeypatch, capsys):
    parser = tool_parser('make_sample_data.py', monkeypatch)
    monkeypatch.undo()
    new = argparse.ArgumentParser.parse_args(parser, ['--out-dir', 'd', '--shape', '64', '128'])
    old = argparse.ArgumentParser.parse_args(parser, ['d', '--size', '128', '64'])
    assert tuple(new.shape) == (64, 128) and new.size is None and old.size == [128, 64] and old.out == 'd'
    assert capsys.readouterr().err == 'warning: --size is deprecated here; use --shape H W\n'
