"""`convert-original`'s checkpoint reader on files that are not what they claim: legacy-format tensors are read
(weights_only, without mmap), plain pickles and damaged files are refused in one line naming the file."""

from __future__ import annotations

import pickle

import pytest
import torch

from patentlmm.assembly.original import load_state_dict as _load


class _Payload:
    def __reduce__(self):  # unpickling would run print(): weights_only must never get that far
        return (print, ("unpickled!",))


def test_a_legacy_format_tensors_only_file_is_read_without_mmap(tmp_path):
    path = tmp_path / "mm_projector.bin"
    torch.save({"model.mm_projector.0.weight": torch.arange(6.0).reshape(2, 3)}, path,
               _use_new_zipfile_serialization=False)  # fmt: skip
    assert torch.equal(_load(path)["model.mm_projector.0.weight"], torch.arange(6.0).reshape(2, 3))


@pytest.mark.parametrize("content", [{"w": [1, 2]}, _Payload()], ids=["plain-dict", "code-payload"])
def test_a_plain_pickle_is_refused_with_a_one_line_reason(tmp_path, content, capsys):
    path = tmp_path / "last.ckpt"
    path.write_bytes(pickle.dumps(content))
    with pytest.raises(ValueError) as caught:
        _load(path)
    assert str(caught.value) == (
        f"Refusing to load {path}: it is not a torch.save checkpoint of tensors (a plain pickle?), and this converter "
        "reads checkpoints with torch.load(weights_only=True) only."
    )
    assert "unpickled!" not in capsys.readouterr().out


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_a_truncated_checkpoint_names_the_file(tmp_path, legacy):
    path = tmp_path / "mp_rank_00_model_states.pt"
    torch.save({"module": {"w": torch.zeros(4096)}}, path, _use_new_zipfile_serialization=not legacy)
    path.write_bytes(path.read_bytes()[:400])
    with pytest.raises(ValueError, match=rf"{path}") as caught:
        _load(path, "module")
    assert "\n" not in str(caught.value).strip()
