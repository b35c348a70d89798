"""Decoding: greedy against full recomputation, top-k/top-p filters, stopping, seeds, FIM prompts, the CLI.

Run: .venv/bin/pytest tests/test_generate.py -q
"""

import pytest
import torch

from minicoder import cli
from minicoder.config import ModelConfig
from minicoder.generate import (
    TextStream,
    complete,
    default_stop_ids,
    encode_fim_prompt,
    generate,
    generate_ids,
    prompt_bos,
    sample_next,
    stream_ids,
    top_k_filter,
    top_p_filter,
)
from minicoder.hf import from_hf, to_hf
from minicoder.model import Transformer
from minicoder.tokenizer import Tokenizer

CODE = ["def add(a, b):\n    return a + b\n", "for i in range(10):\n    print(i * i)\n",
        "class Stack:\n    def __init__(self):\n        self.items = []\n"] * 5


@pytest.fixture(scope="module")
def tok():
    return Tokenizer.train(CODE, vocab_size=300)


def make_model(tok, attn_impl="sdpa", seed=0, max_seq_len=48):
    torch.manual_seed(seed)
    cfg = ModelConfig(vocab_size=tok.vocab_size, n_layers=2, d_model=48, n_heads=4, n_kv_heads=2, d_ff=96,
                      max_seq_len=max_seq_len, attn_impl=attn_impl)
    model = Transformer(cfg).eval()
    with torch.no_grad():  # larger logits than init gives, so that the argmax is never a near-tie
        model.head.weight.mul_(20)
    return model


# ---------------------------------------------------------------- filters (hand-made distributions)

def test_top_p_keeps_the_smallest_set_reaching_p():
    probs = torch.tensor([[0.1, 0.4, 0.3, 0.2]])
    logits = probs.log()
    for p, kept in [(0.35, [1]), (0.6, [1, 2]), (0.85, [1, 2, 3]), (0.95, [0, 1, 2, 3]), (1.0, [0, 1, 2, 3])]:
        out = top_p_filter(logits, p)
        assert torch.isfinite(out[0]).nonzero().flatten().tolist() == kept, p
        torch.testing.assert_close(out[0, kept], logits[0, kept])


def test_top_p_matches_brute_force_on_random_rows():
    logits = torch.randn(50, 40, generator=torch.Generator().manual_seed(0)) * 3
    for p in (0.3, 0.7, 0.9):
        kept = torch.isfinite(top_p_filter(logits, p))
        for row, keep in zip(logits.softmax(-1), kept):
            order = row.argsort(descending=True)
            size = int((row[order].cumsum(0) < p).sum()) + 1  # smallest prefix whose mass reaches p
            assert sorted(keep.nonzero().flatten().tolist()) == sorted(order[:size].tolist())


def test_top_k_filter():
    out = top_k_filter(torch.tensor([[1.0, 3.0, 2.0, 0.5]]), 2)
    assert out.tolist() == [[float("-inf"), 3.0, 2.0, float("-inf")]]
    assert torch.equal(top_k_filter(torch.tensor([[1.0, 2.0]]), 5), torch.tensor([[1.0, 2.0]]))


def test_sampling_respects_the_filters():
    logits = torch.tensor([[0.0, 2.0, 1.0, -1.0]]).repeat(500, 1)
    g = torch.Generator().manual_seed(0)
    assert set(sample_next(logits, 1.0, top_k=2, generator=g).tolist()) == {1, 2}
    assert set(sample_next(logits, 1.0, top_p=0.5, generator=g).tolist()) == {1}
    assert set(sample_next(logits, 1.0, generator=g).tolist()) == {0, 1, 2, 3}
    assert sample_next(logits[:1], 0.0).tolist() == [1]


# ---------------------------------------------------------------- decoding with a model

@pytest.mark.parametrize("attn_impl", ["naive", "sdpa"])
def test_greedy_is_argmax_of_full_recomputation(tok, attn_impl):
    model = make_model(tok, attn_impl)
    prompt = tok.encode("def add(a, b):")
    out = generate_ids(model, prompt, max_new_tokens=20, temperature=0.0)
    assert len(out) == 20 and out == generate_ids(model, prompt, max_new_tokens=20, temperature=0.0)
    with torch.no_grad():
        logits = model(torch.tensor([prompt + out]))[0]  # (T, V), no cache
    assert out == logits[len(prompt) - 1:-1].argmax(-1).tolist()


def test_top_k_1_equals_greedy_and_seeds_repeat(tok):
    model = make_model(tok)
    prompt = tok.encode("for i in")
    greedy = generate_ids(model, prompt, max_new_tokens=15)
    assert generate_ids(model, prompt, max_new_tokens=15, temperature=1.0, top_k=1, seed=5) == greedy
    a = generate_ids(model, prompt, max_new_tokens=15, temperature=1.5, top_p=0.95, seed=7)
    assert a == generate_ids(model, prompt, max_new_tokens=15, temperature=1.5, top_p=0.95, seed=7)
    assert a != generate_ids(model, prompt, max_new_tokens=15, temperature=1.5, top_p=0.95, seed=8)


def test_stops_at_the_first_stop_id(tok):
    model = make_model(tok)
    prompt = tok.encode("class Stack:")
    free = generate_ids(model, prompt, max_new_tokens=20)
    j = next(j for j in range(2, 20) if free[j] not in free[:j])
    assert generate_ids(model, prompt, max_new_tokens=20, stop_ids=[free[j]]) == free[:j + 1]


def test_generate_stops_at_eos_and_drops_it(tok):
    model = make_model(tok)
    prompt = "class Stack:"
    free = generate_ids(model, tok.encode(prompt, bos=True), max_new_tokens=20, stop_ids=[])
    j = next(j for j in range(2, 20) if free[j] not in free[:j])
    with torch.no_grad():  # EOS's output row becomes a slightly longer copy of free[j]'s: it wins at step j
        model.head.weight[tok.eos_id] = model.head.weight[free[j]] * 1.001
    new = generate_ids(model, tok.encode(prompt, bos=True), max_new_tokens=20, stop_ids=[tok.eos_id])
    assert new == free[:j] + [tok.eos_id]
    assert generate(model, tok, prompt, max_new_tokens=20, bos=True) == tok.decode(free[:j])
    assert default_stop_ids(tok) == [tok.eos_id, tok.eot_id]


def test_context_limits(tok):
    model = make_model(tok, max_seq_len=16)
    with pytest.raises(ValueError) as e:
        generate_ids(model, list(range(17)), max_new_tokens=4)
    assert str(e.value) == ("prompt is 17 tokens but the model's context is 16; "
                            "shorten it or use a model with a longer max_seq_len")
    assert len(generate_ids(model, list(range(13)), max_new_tokens=10)) == 4  # fills the context, then stops
    assert generate_ids(model, [1, 2], max_new_tokens=0) == []
    for bad, message in [(dict(temperature=-1.0), "temperature must be a finite number >= 0"),
                         (dict(temperature=float("inf")), "temperature must be a finite number >= 0"),
                         (dict(temperature=float("nan")), "temperature must be a finite number >= 0"), (dict(top_k=0), "top_k must be >= 1"),
                         (dict(top_p=1.5), "top_p must be in (0, 1]")]:
        with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
            generate_ids(model, [1, 2], **bad)


def test_complete_uses_the_fim_prompt(tok):
    model = make_model(tok)
    ids = encode_fim_prompt(tok, "def f(x):\n", "\n    return y\n")
    assert ids == ([tok.bos_id, tok.fim_begin_id] + tok.encode("def f(x):\n") + [tok.fim_hole_id]
                   + tok.encode("\n    return y\n") + [tok.fim_end_id])
    new = generate_ids(model, ids, max_new_tokens=8, stop_ids=default_stop_ids(tok))
    stop = default_stop_ids(tok)
    expected = tok.decode(new[:-1] if new[-1] in stop else new)
    assert complete(model, tok, "def f(x):\n", "\n    return y\n", max_new_tokens=8, bos=True) == expected
    with pytest.raises(ValueError, match="prefix or suffix contains a FIM marker string"):
        complete(model, tok, "a<｜fim▁hole｜>b", "c")


def _ids_seen(model, monkeypatch) -> list:
    """Patch stream_ids (under generate_ids and the CLI) so that each call records the prompt ids it gets."""
    import minicoder.generate as g

    seen, real = [], g.stream_ids
    monkeypatch.setattr(g, "stream_ids", lambda m, ids, *a, **k: seen.append(list(ids)) or real(m, ids, *a, **k))
    return seen


def test_bos_default_follows_the_checkpoint(tok, tmp_path, monkeypatch, capsys):
    # HF DeepSeek checkpoints saw BOS first; minicoder checkpoints (EOS-separated documents) never did.
    model = make_model(tok)
    assert model.trained_with_bos is None and prompt_bos(model) is False  # built here: minicoder's convention
    to_hf(model, tmp_path / "ours", tokenizer=tok)  # records add_bos_token: false
    (tmp_path / "deepseek").mkdir()
    to_hf(model, tmp_path / "deepseek")  # no tokenizer_config.json, as a plain DeepSeek download reads
    ours, deepseek = from_hf(tmp_path / "ours"), from_hf(tmp_path / "deepseek")
    assert prompt_bos(ours) is False and prompt_bos(deepseek) is True
    seen = _ids_seen(model, monkeypatch)
    prompt = tok.encode("def add")
    for m, first in [(model, prompt), (ours, prompt), (deepseek, [tok.bos_id, *prompt])]:
        generate(m, tok, "def add", max_new_tokens=2)
        complete(m, tok, "def f(x):\n", "\n", max_new_tokens=2)
        assert seen[-2] == first and seen[-1][0] == (tok.bos_id if m is deepseek else tok.fim_begin_id)
    generate(deepseek, tok, "def add", max_new_tokens=2, bos=False)  # explicit wins
    generate(model, tok, "def add", max_new_tokens=2, bos=True)
    assert seen[-2] == prompt and seen[-1] == [tok.bos_id, *prompt]
    # the CLI applies the same rule: --hf on our export adds no BOS, on the DeepSeek-style one it does
    for name, first in [("ours", prompt), ("deepseek", [tok.bos_id, *prompt])]:
        assert cli.main(["generate", "--hf", str(tmp_path / name), "--prompt", "def add", "--max-new-tokens", "2",
                         "--tokenizer", str(tmp_path / "ours" / "tokenizer.json"), "--device", "cpu"]) == 0
        assert seen[-1] == first
    capsys.readouterr()


def test_cli_generate_from_an_hf_directory(tok, tmp_path, capsys):
    model = make_model(tok)
    to_hf(model, tmp_path, tokenizer=tok)
    expected = generate(from_hf(tmp_path), tok, "def add", max_new_tokens=6)
    assert expected == generate(model, tok, "def add", max_new_tokens=6)  # same weights, same BOS rule
    assert cli.main(["generate", "--hf", str(tmp_path), "--prompt", "def add", "--max-new-tokens", "6",
                     "--device", "cpu"]) == 0
    assert capsys.readouterr().out == "def add" + expected + "\n"  # the prompt echoed, then the new text
    assert cli.main(["generate", "--hf", str(tmp_path), "--prompt", "def add", "--max-new-tokens", "6",
                     "--device", "cpu", "--no-echo"]) == 0
    assert capsys.readouterr().out == expected + "\n"
    assert cli.main(["generate", "--hf", str(tmp_path / "missing"), "--prompt", "x"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("minicoder generate: error:") and "does not exist" in err and "\n" not in err


# ---------------------------------------------------------------- the CLI: bad flags, echo, streaming, context end


def _one_line_error(capsys, command: str, *needles: str) -> str:
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.startswith(f"minicoder {command}: error:") and "\n" not in err and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err
    return err


@pytest.fixture()
def hf_dir(tok, tmp_path):
    to_hf(make_model(tok), tmp_path / "hf", tokenizer=tok)
    return tmp_path / "hf"


@pytest.mark.parametrize("command", ["generate", "complete"])
@pytest.mark.parametrize("device", ["cuda", "cuda:0", "mps", "foo", "cpu:1", "cuda:x"])
def test_cli_refuses_a_device_this_build_lacks_in_one_line(command, device, hf_dir, capsys):
    if device.startswith("cuda") and torch.cuda.is_available() and device != "cuda:x":
        pytest.skip("this machine has a GPU")
    if device == "mps" and torch.backends.mps.is_available():
        pytest.skip("this machine has MPS")
    text = ["--prompt", "def"] if command == "generate" else ["--prefix", "def", "--suffix", "x"]
    assert cli.main([command, "--hf", str(hf_dir), *text, "--device", device]) == 1
    _one_line_error(capsys, command, f"--device {device}")


@pytest.mark.parametrize("flag, value", [("--temperature", "nan"), ("--temperature", "inf"), ("--temperature", "-1"),
                                         ("--top-p", "nan"), ("--top-p", "0"), ("--top-k", "0"),
                                         ("--max-new-tokens", "-1")])
def test_cli_sampling_flags_are_checked_and_named(flag, value, hf_dir, capsys):
    for command, text in [("generate", ["--prompt", "def"]), ("complete", ["--prefix", "def", "--suffix", "x"])]:
        assert cli.main([command, "--hf", str(hf_dir), *text, flag, value, "--device", "cpu"]) == 1
        _one_line_error(capsys, command, flag)


def test_cli_complete_echoes_prefix_middle_suffix(tok, hf_dir, capsys):
    middle = complete(from_hf(hf_dir), tok, "def f(x):\n", "\n    return y\n", max_new_tokens=5)
    assert cli.main(["complete", "--hf", str(hf_dir), "--prefix", "def f(x):\n", "--suffix", "\n    return y\n",
                     "--max-new-tokens", "5", "--device", "cpu"]) == 0
    assert capsys.readouterr().out == "def f(x):\n" + middle + "\n    return y\n" + "\n"


def test_cli_streams_each_token_as_it_comes(tok, hf_dir, monkeypatch, capsys):
    import minicoder.generate as g

    events, real = [], g.stream_ids

    def spy(*a, **k):
        for i in real(*a, **k):
            events.append(("token", len(capsys.readouterr().out)))  # what was printed before this token came
            yield i
        return "length"

    monkeypatch.setattr(g, "stream_ids", spy)
    assert cli.main(["generate", "--hf", str(hf_dir), "--prompt", "def", "--max-new-tokens", "6", "--device", "cpu",
                     "--no-echo", "--temperature", "1", "--seed", "3"]) == 0
    printed_before = [n for _, n in events]
    assert len(printed_before) == 6 and sum(n > 0 for n in printed_before[1:]) >= 3  # output arrived in between


def test_text_stream_holds_back_a_character_cut_across_tokens(tok):
    text = "naïve café → 日本"
    ids = tok.encode(text)
    byte_ids = [tok._byte_to_id[b] for b in text.encode("utf-8")]  # one token per byte: every character cut
    for seq in (ids, byte_ids, byte_ids[:-1]):  # the last: a character cut off for good
        stream = TextStream(tok)
        pieces = [stream.push(i) for i in seq] + [stream.finish()]
        assert "".join(pieces) == tok.decode(seq)
        assert all("\ufffd" not in p for p in pieces[:-1])


def test_stream_ids_says_why_it_stopped(tok):
    model = make_model(tok, max_seq_len=16)

    def run(ids, n, stop=()):
        gen = stream_ids(model, ids, max_new_tokens=n, stop_ids=stop)
        out = []
        while True:
            try:
                out.append(next(gen))
            except StopIteration as end:
                return out, end.value

    out, why = run(list(range(13)), 10)
    assert why == "context" and len(out) == 4
    out, why = run([1, 2], 3)
    assert why == "length" and len(out) == 3
    free, _ = run([1, 2], 5)
    out, why = run([1, 2], 5, stop=[free[1]])
    assert why == "stop" and out == free[:free.index(free[1]) + 1]
    assert run([1, 2], 0) == ([], "length")


def test_cli_says_when_it_stopped_at_the_context_end(tok, tmp_path, capsys):
    to_hf(make_model(tok, max_seq_len=16), tmp_path / "short", tokenizer=tok)
    assert cli.main(["generate", "--hf", str(tmp_path / "short"), "--prompt", "def add(a, b):", "--max-new-tokens",
                     "100", "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert "stopped at the end of the model's context of 16 tokens" in err
    assert cli.main(["generate", "--hf", str(tmp_path / "short"), "--prompt", "def add(a, b):", "--max-new-tokens",
                     "2", "--device", "cpu"]) == 0
    assert "stopped after --max-new-tokens 2" in capsys.readouterr().err
    long_prompt = "x = 1\n" * 20
    assert cli.main(["generate", "--hf", str(tmp_path / "short"), "--prompt", long_prompt, "--device", "cpu"]) == 1
    _one_line_error(capsys, "generate", "--prompt", "context is 16")


def test_a_smaller_tokenizer_never_gets_an_id_it_cannot_decode(tok, tmp_path, monkeypatch, capsys):
    # An HF model whose embedding has more rows than the tokenizer has ids (DeepSeek pads 32,022 to
    # 32,256): those rows are never sampled, so decoding never fails mid-generation, even when the
    # model favours them (here by a patched forward pass).
    small = Tokenizer(dict(tok.vocab), tok.merges, special_tokens={})
    model = make_model(tok)
    assert small.vocab_size < model.config.vocab_size
    real_forward = Transformer.forward
    monkeypatch.setattr(Transformer, "forward", lambda self, *a, **k: real_forward(self, *a, **k).index_fill(
        -1, torch.arange(small.vocab_size, self.config.vocab_size), 1e4))
    assert min(generate_ids(model, [1, 2], max_new_tokens=5)) >= small.vocab_size  # unmasked: only padding ids
    out = generate_ids(model, [1, 2], max_new_tokens=20, temperature=1.0, seed=0, vocab_size=small.vocab_size)
    assert max(out) < small.vocab_size
    to_hf(model, tmp_path / "m", tokenizer=tok)
    small.save(tmp_path / "small.json")
    assert cli.main(["generate", "--hf", str(tmp_path / "m"), "--tokenizer", str(tmp_path / "small.json"),
                     "--prompt", "def", "--max-new-tokens", "20", "--temperature", "1", "--seed", "0",
                     "--device", "cpu"]) == 0
    assert "stopped after --max-new-tokens 20" in capsys.readouterr().err
