"""mmengine's CheckpointHook, made safe against a write that fails part-way (disk full, quota, file-size limit).

mmengine 0.10.7 deletes the oldest checkpoint (``max_keep_ckpts``) and the previous best one *before* it writes the
new one, writes in place and then rewrites ``last_checkpoint``: on a full disk a run could lose its only good
checkpoint, keep a truncated one and name a deleted file in ``last_checkpoint``, so that ``--resume`` fails too.
``AtomicCheckpointHook`` fixes that; a failed save stops the run with one ``WriteError`` on every rank.
"""
import contextlib
import os
import os.path as osp
from typing import Any, Iterator, List

import torch.distributed as dist
from mmengine.dist import is_main_process
from mmengine.fileio.backends import LocalBackend
from mmengine.hooks import CheckpointHook
from mmseg.registry import HOOKS

from repseg.utils.io import WriteError, atomic_write, is_write_failure
from .cli import SharedError


class CheckpointWriteError(WriteError, SharedError):
    """A checkpoint rank 0 could not write; raised on every rank, printed once."""


class _DeferredRemovals:
    """The hook's file backend, except that ``remove`` / ``rmtree`` are recorded, to run once the save succeeded."""

    def __init__(self, backend: Any):
        self._backend = backend
        self.pending: List[Any] = []

    def remove(self, path: str) -> None:
        self.pending.append((self._backend.remove, path))

    def rmtree(self, path: str) -> None:
        self.pending.append((self._backend.rmtree, path))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)


def _agreed(failure: Any) -> Any:
    """rank 0's ``failure`` (None or (path, reason, errno)) on every rank of a multi-process run."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        box = [failure]
        dist.broadcast_object_list(box, src=0)
        return box[0]
    return failure


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """``CheckpointHook`` whose checkpoints are renamed into place when complete, old ones removed only then, and
    ``last_checkpoint`` replaced atomically; local file systems only (others get mmengine's behaviour)."""

    def _save_checkpoint_with_step(self, runner: Any, step: int, meta: dict) -> None:
        if not isinstance(self.file_backend, LocalBackend):
            return super()._save_checkpoint_with_step(runner, step, meta)
        with self._whole_or_none(runner):  # mmengine 0.10.7's steps, but last_checkpoint replaced atomically
            if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids and self.keep_ckpt_ids[-1] == step):
                if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                    old = self.file_backend.join_path(self.out_dir, self.filename_tmpl.format(
                        self.keep_ckpt_ids.popleft()))
                    if is_main_process() and self.file_backend.isfile(old):
                        self.file_backend.remove(old)  # deferred until the new one is complete
                self.keep_ckpt_ids.append(step)
                runner.message_hub.update_info('keep_ckpt_ids', list(self.keep_ckpt_ids))
            filename = self.filename_tmpl.format(step)
            self.last_ckpt = self.file_backend.join_path(self.out_dir, filename)
            runner.message_hub.update_info('last_ckpt', self.last_ckpt)
            runner.save_checkpoint(self.out_dir, filename, self.file_client_args, save_optimizer=self.save_optimizer,
                                   save_param_scheduler=self.save_param_scheduler, meta=meta, by_epoch=self.by_epoch,
                                   backend_args=self.backend_args, **self.args)
            if is_main_process():
                with atomic_write(osp.join(runner.work_dir, 'last_checkpoint'), 'w') as handle:
                    handle.write(self.last_ckpt)

    def _save_best_checkpoint(self, runner: Any, metrics: dict) -> None:
        if not isinstance(self.file_backend, LocalBackend):
            return super()._save_best_checkpoint(runner, metrics)
        with self._whole_or_none(runner):
            super()._save_best_checkpoint(runner, metrics)

    @contextlib.contextmanager
    def _whole_or_none(self, runner: Any) -> Iterator[None]:
        """Inside: ``runner.save_checkpoint`` writes a temporary file and renames it; removals wait for the end of
        the block and are dropped if it fails; a refused write is one ``CheckpointWriteError`` on every rank."""
        backend, save = self.file_backend, runner.save_checkpoint
        self.file_backend = deferred = _DeferredRemovals(backend)

        def atomic_save(out_dir: str, filename: str, *args: Any, **kwargs: Any) -> None:
            final, tmp = osp.join(out_dir, filename), osp.join(out_dir, f'.{filename}.tmp')
            failure = None
            try:
                save(out_dir, f'.{filename}.tmp', *args, **kwargs)  # rank 0 writes (Runner.save_checkpoint)
                if is_main_process():
                    os.replace(tmp, final)
            except OSError as err:
                if not is_write_failure(err):
                    raise
                failure = (final, err.strerror or str(err), err.errno)
            finally:
                if is_main_process() and osp.exists(tmp):
                    os.unlink(tmp)
            failure = _agreed(failure)
            if failure is not None:
                raise CheckpointWriteError(*failure)

        runner.save_checkpoint = atomic_save
        try:
            yield
        except OSError as err:
            if is_write_failure(err) and not isinstance(err, CheckpointWriteError):  # last_checkpoint itself
                raise CheckpointWriteError(err.filename, err.strerror or str(err), err.errno) from None
            raise
        finally:
            runner.save_checkpoint, self.file_backend = save, backend
        for remove, path in deferred.pending:  # the new checkpoint is complete: now the old ones may go
            remove(path)
