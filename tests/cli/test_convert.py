"""`mixma convert malmm-lavis`: a released MA-LMM checkpoint to `mixma ask` in two commands, and back."""

from __future__ import annotations

import torch

from mixma.cli import main
from mixma.models.malmm import MALMM
from tests.models.malmm.test_lavis import TRAINED, lavis_state, save_lavis


def test_convert_then_ask_and_back(capsys, tmp_path, indexed_video):
    from mixma.models.malmm.small import SmallConfig, build_small_malmm

    torch.manual_seed(0)
    sizes = SmallConfig(vision_hidden=32, qformer_hidden=32, llm_hidden=32, num_query_tokens=4, vision_layers=1, qformer_layers=2)
    base, processor = build_small_malmm(["Question: what moves? Short answer:", "a block"], sizes, image_size=32, memory_bank_length=2)
    base.save_pretrained(tmp_path / "instructblip")  # the stand-in for a downloaded InstructBLIP
    processor.save_pretrained(tmp_path / "instructblip")
    trained = MALMM.from_pretrained(tmp_path / "instructblip", post_layernorm_eps=1e-5).eval()
    with torch.no_grad():
        for name, param in trained.named_parameters():
            if name.startswith(TRAINED):
                param.add_(torch.randn_like(param) * 0.1)
    trained.save_pretrained(tmp_path / "source")
    processor.save_pretrained(tmp_path / "source")
    released = save_lavis(tmp_path / "checkpoint_best.pth", lavis_state(trained), memory_bank_length=2)

    out = tmp_path / "malmm"
    assert main(["convert", "malmm-lavis", str(released), "--base", str(tmp_path / "instructblip"), "-o", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().err
    answers = []
    for folder in (tmp_path / "source", out):
        assert main(["ask", str(indexed_video), "what moves?", "-c", str(folder), "-n", "6", "--beams"]) == 0
        answers.append(capsys.readouterr().out)
    assert answers[0] == answers[1] and answers[0].strip()

    assert main(["convert", "malmm-lavis", str(out), "--to", "lavis", "-o", str(tmp_path / "back.pth")]) == 0
    back = torch.load(tmp_path / "back.pth", weights_only=True)
    for name, tensor in lavis_state(trained).items():
        torch.testing.assert_close(back["model"][name], tensor, rtol=0, atol=0)

    assert main(["convert", "malmm-lavis", str(released), "-o", str(tmp_path / "x")]) == 2
    assert "--base INSTRUCTBLIP_DIR is required" in capsys.readouterr().err
    assert main(["convert", "malmm-lavis", str(released), "--base", str(tmp_path / "instructblip"), "-o", str(out)]) == 2
    assert capsys.readouterr().err.strip() == f"error: {out} exists (pass --overwrite to replace it)"
