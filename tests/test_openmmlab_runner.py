"""mmengine's own checkpoints load under torch's weights-only default (resume, load_from)."""
import pytest
import torch
import torch.nn as nn
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch.utils.data import TensorDataset

from backbones.openmmlab import DropTransferRunner


class Toy(BaseModel):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x, y, mode="loss"):
        out = self.fc(x)
        return {"loss": nn.functional.cross_entropy(out, y)} if mode == "loss" else out


def collate(batch):
    return {"x": torch.stack([b[0] for b in batch]), "y": torch.stack([b[1] for b in batch])}


def make(runner_cls, work_dir, epochs, **kw):
    g = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.randn(16, 4, generator=g), torch.randint(0, 2, (16,), generator=g))
    return runner_cls(
        model=Toy(), work_dir=str(work_dir),
        train_dataloader=dict(dataset=data, batch_size=4, collate_fn=collate,
                              sampler=dict(type="DefaultSampler", shuffle=True)),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1, momentum=0.9)),
        train_cfg=dict(by_epoch=True, max_epochs=epochs),
        default_hooks=dict(checkpoint=dict(type="CheckpointHook", interval=1)), **kw)


def test_resume_and_load_from_work_with_the_suite_runner(tmp_path):
    first = make(DropTransferRunner, tmp_path, 1)
    first.train()
    ckpt = tmp_path / "epoch_1.pth"
    assert ckpt.is_file()
    with pytest.raises(Exception, match="Unsupported global"):  # the bug being fixed
        torch.load(ckpt)
    resumed = make(DropTransferRunner, tmp_path, 2, resume=True, load_from=str(ckpt))
    resumed.train()
    assert resumed.epoch == 2 and resumed.iter == 8
    # The optimizer state came back too (momentum buffers exist only after training steps).
    assert resumed.optim_wrapper.optimizer.state
    loaded = make(DropTransferRunner, tmp_path / "b", 1, load_from=str(ckpt))
    loaded.load_or_resume()
    torch.testing.assert_close(loaded.model.fc.weight, first.model.fc.weight)


def test_plain_mmengine_runner_still_fails_to_resume(tmp_path):
    # Documents why DropTransferRunner exists: if this starts passing, mmengine fixed it.
    make(DropTransferRunner, tmp_path, 1).train()
    with pytest.raises(Exception, match="Unsupported global"):
        make(Runner, tmp_path, 2, resume=True, load_from=str(tmp_path / "epoch_1.pth")).train()
