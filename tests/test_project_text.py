"""The project speaks of itself alone: no file a user gets (docs, configs, code, packaging) points at notes, shared
folders or issue threads that only its authors could read."""
import os
import re
import subprocess
from pathlib import Path

import pytest
from conftest import REPO

#: What a user cannot follow, each with why.
FORBIDDEN = {
    'FACTS.md': re.compile(r'FACTS\.md', re.IGNORECASE),
    '../shared/reference': re.compile(r'\.\./shared/reference'),
    'issue <number>': re.compile(r'\bissue\s*#?\s*\d+', re.IGNORECASE),
    'this task': re.compile(r'\bthis task\b', re.IGNORECASE),
}
#: What is not the project's text: the tests, build outputs, data and weights (git-ignored).
SKIPPED_DIRS = {'.git', '.venv', 'work_dirs', 'checkpoints', 'build', '__pycache__', '.pytest_cache'}
SKIPPED_PREFIXES = ('tests/', 'data/sample/', 'data/cityscapes/', 'data/camvid/')


def offenses(text: str) -> list:
    """(line number, what, line) for every line of ``text`` that names something of FORBIDDEN."""
    return [(number, what, line.strip()) for number, line in enumerate(text.splitlines(), 1)
            for what, pattern in FORBIDDEN.items() if pattern.search(line)]


def project_files(root: Path = REPO) -> list:
    """The repository's files outside tests/: tracked and new ones that git does not ignore, or, without git (an
    unpacked source archive), every file outside the skipped folders."""
    try:
        listed = subprocess.run(['git', 'ls-files', '--cached', '--others', '--exclude-standard', '-z'], cwd=root,
                                capture_output=True, check=True).stdout.decode().split('\0')
    except (OSError, subprocess.CalledProcessError):
        listed = []
        for folder, dirs, files in os.walk(root):
            dirs[:] = [d for d in dirs if d not in SKIPPED_DIRS and not d.endswith('.egg-info')]
            listed += [(Path(folder) / f).relative_to(root).as_posix() for f in files]
    return sorted(p for p in listed if p and not p.startswith(SKIPPED_PREFIXES) and (root / p).is_file())


def read_text(path: Path):
    try:
        return path.read_text(encoding='utf-8')
    except (UnicodeDecodeError, OSError):
        return None  # binary or unreadable: not text a user reads


def test_the_scan_catches_each_kind():
    injected = ('see FACTS.md section 2\n'
                'python tools/quantize.py --agreement-images ../shared/reference/frames\n'
                'the size budget of issue 26\n'
                'official Issue #99 explains it\n'
                'No GPU was available to This task.\n'
                'a clean line\n')
    found = offenses(injected)
    assert [number for number, _, _ in found] == [1, 2, 3, 4, 5]
    assert {what for _, what, _ in found} == set(FORBIDDEN)
    # what users can follow stays allowed: a link to an upstream issue, a task in general, a data path of ours
    assert offenses('[the identity branch](https://github.com/DingXiaoH/RepVGG/issues/99)\n'
                    'each task of the tools\nthe Cityscapes frames in data/cityscapes\n') == []


def test_the_file_list_covers_the_project():
    files = set(project_files())
    assert {'README.md', 'CHANGELOG.md', 'setup.cfg', 'Makefile', 'repseg/__init__.py', 'tools/train.py',
            'configs/pspnet_repvgg_b2.py', 'data/README.md'} <= files
    assert not any(f.startswith('tests/') for f in files)


def test_no_file_points_at_what_users_cannot_read():
    found = []
    for rel in project_files():
        text = read_text(REPO / rel)
        if text is not None:
            found += [f'{rel}:{number}: {what}: {line[:120]}' for number, what, line in offenses(text)]
    if found:
        pytest.fail('say it in the project\'s own words (or link the upstream page):\n' + '\n'.join(found))
