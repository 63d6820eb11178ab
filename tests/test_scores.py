"""Tests for shoulders.advisor.scores: hand-computed values, a slow reference LogME, behaviour and validation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from shoulders.advisor import (
    SCORES,
    ScoreSpec,
    compute_scores,
    feature_distribution_distance,
    gbc,
    h_score,
    leep,
    linear_probe_accuracy,
    list_scores,
    logme,
    nce,
    prediction_entropy,
)


def clusters(seed: int, n_per_class: int = 30, dims: int = 16, classes: int = 3, spread: float = 10.0):
    """Gaussian clusters with unit noise around random centres ``spread`` apart (roughly)."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(classes), n_per_class)
    centres = rng.normal(size=(classes, dims)) * spread
    return centres[labels] + rng.normal(size=(len(labels), dims)), labels


def shuffled(labels: np.ndarray, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).permutation(labels)


# ---------------------------------------------------------------------------------------------------------- NCE
class TestNCE:
    def test_source_label_determines_target(self):
        assert nce(np.array([3, 3, 7, 7]), np.array([0, 0, 1, 1])) == 0.0

    def test_independent_balanced_binary_is_minus_log_2(self):
        assert nce(np.array([0, 1, 0, 1]), np.array([0, 0, 1, 1])) == pytest.approx(-math.log(2), abs=1e-12)

    def test_partial_table_by_hand(self):
        # z=0 holds y = (0, 0, 1): H = H(2/3, 1/3) with weight 3/4; z=1 holds y = (1): H = 0.
        h = 0.75 * -(2 / 3 * math.log(2 / 3) + 1 / 3 * math.log(1 / 3))
        assert nce(np.array([0, 0, 0, 1]), np.array([0, 0, 1, 1])) == pytest.approx(-h, abs=1e-12)


# --------------------------------------------------------------------------------------------------------- LEEP
class TestLEEP:
    def test_four_samples_by_hand(self):
        theta = np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [0.3, 0.7]])
        labels = np.array([0, 0, 1, 1])
        # P(y, z) = sum_i theta_iz [y_i = y] / 4 = [[1.5, 0.5], [0.5, 1.5]] / 4; P(z) = [0.5, 0.5];
        # P(y | z) = [[0.75, 0.25], [0.25, 0.75]] (rows y, columns z).
        expected = [0.75 * 0.9 + 0.25 * 0.1, 0.75 * 0.6 + 0.25 * 0.4,  # y = 0: 0.70, 0.55
                    0.25 * 0.2 + 0.75 * 0.8, 0.25 * 0.3 + 0.75 * 0.7]  # y = 1: 0.65, 0.60
        assert leep(theta, labels) == pytest.approx(np.mean(np.log(expected)), abs=1e-12)

    def test_perfect_correspondence_is_zero(self):
        theta = np.eye(3)[[0, 1, 2, 2, 0]]  # source classes 0 and 2 both map to target 0
        assert leep(theta, np.array([0, 1, 0, 0, 0])) == pytest.approx(0.0, abs=1e-12)

    def test_never_positive(self):
        rng = np.random.default_rng(0)
        logits = rng.normal(size=(50, 20))
        theta = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        assert leep(theta, np.arange(50) % 4) <= 0.0

    def test_source_class_without_mass_is_ignored(self):
        theta = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
        assert leep(theta, np.array([0, 1])) == pytest.approx(0.0, abs=1e-12)


class TestPredictionEntropy:
    def test_one_hot_is_zero(self):
        assert prediction_entropy(np.eye(5)[[0, 3, 4]]) == 0.0

    def test_uniform_is_one(self):
        assert prediction_entropy(np.full((4, 1000), 1e-3)) == pytest.approx(1.0, abs=1e-9)

    def test_mean_of_one_hot_and_uniform(self):
        assert prediction_entropy(np.array([[1.0, 0, 0, 0], [0.25] * 4])) == pytest.approx(0.5, abs=1e-12)


# -------------------------------------------------------------------------------------------------------- LogME
def reference_logme(features: np.ndarray, labels: np.ndarray) -> float:
    """Slow, readable LogME (the paper's Algorithm 1): explicit A = alpha I + beta F^T F, one class at a time."""
    f = features.astype(np.float64)
    f = f / np.sqrt(np.mean(np.sum(f**2, axis=1)))  # the scale at which shoulders applies the 1e-5 guard
    n, d = f.shape
    eig = np.linalg.eigvalsh(f.T @ f)  # all D eigenvalues, zeros included
    evidences = []
    for c in range(labels.max() + 1):
        y = (labels == c).astype(np.float64)
        alpha, beta = 1.0, 1.0
        for _ in range(1000):
            a = alpha * np.eye(d) + beta * f.T @ f
            m = beta * np.linalg.solve(a, f.T @ y)
            gamma = np.sum(beta * eig / (alpha + beta * eig))
            new_alpha = gamma / (m @ m + 1e-5)
            new_beta = (n - gamma) / (np.sum((y - f @ m) ** 2) + 1e-5)
            done = abs(new_alpha / new_beta - alpha / beta) <= 1e-12 * alpha / beta
            alpha, beta = new_alpha, new_beta
            if done:
                break
        a = alpha * np.eye(d) + beta * f.T @ f
        m = beta * np.linalg.solve(a, f.T @ y)
        evidence = (d / 2 * np.log(alpha) + n / 2 * np.log(beta) - 0.5 * np.linalg.slogdet(a)[1]
                    - beta / 2 * np.sum((y - f @ m) ** 2) - alpha / 2 * (m @ m) - n / 2 * np.log(2 * np.pi))
        evidences.append(evidence / n)
    return float(np.mean(evidences))


class TestLogME:
    @pytest.mark.parametrize("n,d", [(40, 8), (20, 30)])  # both Gram branches: F^T F and F F^T
    def test_matches_reference_fixed_point(self, n, d):
        rng = np.random.default_rng(n)
        features = rng.normal(size=(n, d)) + rng.normal(size=d)
        labels = np.arange(n) % 3
        assert logme(features, labels) == pytest.approx(reference_logme(features, labels), abs=1e-6)

    def test_separated_clusters_beat_shuffled_labels(self):
        features, labels = clusters(0)
        assert logme(features, labels) > logme(features, shuffled(labels)) + 0.1

    def test_invariant_to_feature_scale(self):
        features, labels = clusters(11, spread=1.0)
        assert logme(features * 1e3, labels) == pytest.approx(logme(features, labels), abs=1e-9)

    def test_zero_padding_switches_branch_without_changing_value(self):
        features, labels = clusters(1, n_per_class=10, dims=12)  # N = 30 > D = 12: F^T F branch
        padded = np.hstack([features, np.zeros((30, 50))])  # D = 62 > N: F F^T branch
        assert logme(padded, labels) == pytest.approx(logme(features, labels), abs=1e-8)


# ------------------------------------------------------------------------------------------------------ H-score
class TestHScore:
    def test_one_dimensional_by_hand(self):
        # mean 6; total variance (36+16+16+36)/4 = 26; class means 1 and 11, their variance 25.
        features = np.array([[0.0], [2.0], [10.0], [12.0]])
        assert h_score(features, np.array([0, 0, 1, 1]), shrinkage=0.0) == pytest.approx(25 / 26, abs=1e-12)

    def test_separable_beats_shuffled_and_bounded_by_classes(self):
        features, labels = clusters(2, n_per_class=40)
        separable = h_score(features, labels)
        assert h_score(features, shuffled(labels)) < 0.2 < 1.5 < separable <= 2.0 + 1e-9

    def test_shrinkage_out_of_range_raises(self):
        features, labels = clusters(3)
        with pytest.raises(ValueError, match="shrinkage"):
            h_score(features, labels, shrinkage=1.5)


# ---------------------------------------------------------------------------------------------------------- GBC
class TestGBC:
    def test_two_unit_gaussians_by_hand(self):
        # class 0: {-1, 1} -> mean 0, var 1; class 1: {1, 3} -> mean 2, var 1; D_B = (2^2 / 1) / 8 = 0.5.
        features = np.array([[-1.0], [1.0], [1.0], [3.0]])
        expected = -2 * math.exp(-0.5)  # ordered pairs (0, 1) and (1, 0)
        assert gbc(features, np.array([0, 0, 1, 1]), n_components=None) == pytest.approx(expected, abs=1e-12)

    def test_identical_classes_give_one_per_ordered_pair(self):
        block = np.random.default_rng(4).normal(size=(10, 5))
        features, labels = np.vstack([block] * 3), np.repeat(np.arange(3), 10)
        for covariance in ("diagonal", "spherical"):
            assert gbc(features, labels, covariance=covariance) == pytest.approx(-6.0, abs=1e-9)

    def test_far_clusters_near_zero_and_overlap_more_negative(self):
        far = gbc(*clusters(5, spread=50.0))
        near = gbc(*clusters(5, spread=0.3))
        assert -1e-6 < far <= 0.0
        assert near < -1.0

    def test_pca_reduction_runs(self):
        features, labels = clusters(6, dims=100)
        assert -6.0 <= gbc(features, labels, n_components=8, covariance="spherical") <= 0.0

    def test_bad_covariance_name(self):
        with pytest.raises(ValueError, match="spherical"):
            gbc(*clusters(7), covariance="full")


class TestLinearProbe:
    def test_separable_is_perfect_and_shuffled_near_chance(self):
        features, labels = clusters(8, n_per_class=30, dims=200, classes=4)
        assert linear_probe_accuracy(features, labels) >= 0.98
        assert linear_probe_accuracy(features, shuffled(labels)) < 0.5  # chance 0.25


class TestFeatureDistributionDistance:
    def test_zero_for_own_statistics_and_one_for_a_one_std_shift(self):
        features = np.random.default_rng(9).normal(size=(50, 6)) * 3 + 1
        mean, var = features.mean(axis=0), features.var(axis=0)
        assert feature_distribution_distance(features, mean, var) == pytest.approx(0.0, abs=1e-12)
        assert feature_distribution_distance(features, mean - np.sqrt(var), var) == pytest.approx(1.0, abs=1e-12)

    def test_reference_shape_must_match(self):
        with pytest.raises(ValueError, match=r"shape \(6,\)"):
            feature_distribution_distance(np.zeros((5, 6)), np.zeros(5), np.ones(6))


# ------------------------------------------------------------------------------------------------------ registry
class TestRegistry:
    def test_every_score_is_listed_with_a_direction(self):
        assert set(list_scores()) == {"logme", "h_score", "gbc", "linear_probe", "leep", "prediction_entropy", "nce"}
        assert SCORES.get("prediction_entropy").higher_is_better is False

    def test_duplicate_name_raises(self):
        with pytest.raises(ValueError, match="already registered"):
            SCORES.register("logme", ScoreSpec("logme", logme, "features", True, "dup"))

    def test_spec_rejects_unknown_input_kind(self):
        with pytest.raises(ValueError, match="needs must be"):
            ScoreSpec("x", logme, "pixels", True, "none")

    def test_unknown_name_lists_valid_ones(self):
        with pytest.raises(ValueError, match="did you mean logme.*valid: logme, h_score"):
            compute_scores(labels=np.array([0, 1]), source_labels=np.array([0, 1]), names=["logmee"])

    def test_picks_scores_whose_inputs_are_given(self):
        theta = np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [0.3, 0.7]])
        labels = np.array([0, 0, 1, 1])
        result = compute_scores(labels=labels, source_probs=theta)
        assert list(result) == ["leep", "prediction_entropy", "nce"]
        assert result["nce"] == 0.0  # argmax [0, 0, 1, 1] determines the labels
        assert result["leep"] == leep(theta, labels)

    def test_named_feature_scores(self):
        features, labels = clusters(10)
        result = compute_scores(labels=labels, features=features, names=["logme", "gbc"])
        assert result == {"logme": logme(features, labels), "gbc": gbc(features, labels)}

    def test_named_score_without_its_input(self):
        with pytest.raises(ValueError, match="'leep' needs source_probs"):
            compute_scores(labels=np.array([0, 1]), features=np.zeros((2, 3)), names=["leep"])

    def test_no_inputs(self):
        with pytest.raises(ValueError, match="at least one of"):
            compute_scores(labels=np.array([0, 1]))


# ---------------------------------------------------------------------------------------------------- validation
class TestValidation:
    @pytest.mark.parametrize(
        "labels,match",
        [
            (np.array([0.0, 1.0, 0.0, 1.0]), "integer"),
            (np.array([0, 0, 0, 0]), "at least 2 classes"),
            (np.array([0, 2, 0, 2]), r"classes \[1\] have fewer than 1"),
            (np.array([0, 1, 0]), "3 entries but the inputs have 4"),
            (np.array([-1, 1, 0, 1]), "non-negative"),
        ],
    )
    def test_bad_labels(self, labels, match):
        with pytest.raises(ValueError, match=match):
            logme(np.ones((4, 3)), labels)

    def test_gbc_needs_two_samples_per_class(self):
        with pytest.raises(ValueError, match=r"classes \[1\] have fewer than 2"):
            gbc(np.ones((4, 3)), np.array([0, 0, 0, 1]))

    def test_logits_are_rejected(self):
        with pytest.raises(ValueError, match="apply softmax"):
            leep(np.array([[2.0, -1.0], [0.5, 0.3]]), np.array([0, 1]))

    def test_non_finite_features(self):
        with pytest.raises(ValueError, match="NaN or inf"):
            h_score(np.array([[0.0], [np.nan], [1.0], [2.0]]), np.array([0, 0, 1, 1]))

    def test_all_zero_features(self):
        with pytest.raises(ValueError, match="all zero"):
            logme(np.zeros((4, 3)), np.array([0, 0, 1, 1]))

    def test_features_must_be_2d(self):
        with pytest.raises(ValueError, match="2-D"):
            logme(np.ones(4), np.array([0, 0, 1, 1]))

    def test_source_labels_must_be_integers(self):
        with pytest.raises(ValueError, match="argmax"):
            nce(np.array([0.2, 0.8]), np.array([0, 1]))

    def test_compute_scores_checks_lengths(self):
        with pytest.raises(ValueError, match="features has 3 samples but labels has 2"):
            compute_scores(labels=np.array([0, 1]), features=np.zeros((3, 2)))
        with pytest.raises(ValueError, match="source_probs has 1 samples"):
            compute_scores(labels=np.array([0, 1]), source_probs=np.ones((1, 2)) / 2)
