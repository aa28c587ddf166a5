"""ScenarioPopularityPrior: a learned (and a fitted) per-scenario popularity term inside the
dot product."""

import tensorflow as tf


class ScenarioPopularityPrior(tf.keras.layers.Layer):
  """Per-scenario weights w_s [S * P] that the user tower appends to its embedding.

  The item tower appends the item's P popularity signals per served scenario (e.g.
  c(i) = log(1 + clicks of i in each scenario), and the same for recency-decayed clicks),
  [S] each, to its embedding, so

      <[u; w_s], [v; c(i)]> = <u, v> + sum_j w_s[j] c_j(i)

  adds a popularity prior that each scenario learns for itself (a scenario may rely on its
  own clicks, on another scenario's, on recent or on all-time popularity, or on none),
  while the item embedding stays scenario-independent and one index still serves every
  scenario. Each signal's block starts at the identity (w_s = one-hot of s per block):
  each scenario begins with its own log-popularity as the prior and the towers learn what
  personalises beyond it.

  The weights are stored divided by `learning_rate_multiplier` (w = m * theta), so Adam,
  whose steps have about the learning rate's size whatever the gradient's, moves w m times
  faster than the towers' weights: S * S * P numbers that a small scenario's few batches
  must be able to move within a short schedule (on KuaiRand-Pure, at m = 1 the smallest
  tab's own weight went from 1.0 to 1.25 in 30 epochs).

  Beyond the paper, a fitted term on top (post-hoc logit adjustment, Menon et al. 2021,
  "Long-tail learning via logit adjustment"): a per-scenario weight tau_s, not trained but
  set after training (retrieval/popularity_weights.py fits it on the validation window),
  added to w_s's entry for the scenario's own clicks (signal `fitted_signal`, usually
  log(1 + clicks in s)) when the layer is not training:

      served:  w_s + tau_s * e_{fitted_signal * S + s}     training:  w_s

  so the served score is <u, v> + w_s . c(i) + tau_s c_s(i) and the index, the Evaluator
  and the release all score with the same tau_s, inside the dot product.

  Input: scenario index [B] (int; index S, a scenario outside the mapping, has its own
  row, whose tau is 0). Output: w_s [B, S * P].
  """

  def __init__(self, num_scenarios: int, num_signals: int = 1,
               learning_rate_multiplier: float = 10.0, fitted_signal: int = 0, **kwargs):
    super().__init__(**kwargs)
    self.num_scenarios = num_scenarios
    self.num_signals = num_signals
    self.learning_rate_multiplier = learning_rate_multiplier
    self.fitted_signal = fitted_signal

  def build(self, input_shape):
    m, s = self.learning_rate_multiplier, self.num_scenarios

    def identity_blocks(shape, dtype=None):
      return tf.tile(tf.eye(shape[0], s, dtype=dtype), [1, self.num_signals]) / m

    self.scaled_weights = self.add_weight(  # theta [S + 1, S * P]: row s is w_s / m
        name='scaled_weights', shape=(s + 1, s * self.num_signals),
        initializer=identity_blocks)
    self.fitted = self.add_weight(  # tau [S + 1]; 0 until set_fitted
        name='fitted_weights', shape=(s + 1,), initializer='zeros', trainable=False)
    super().build(input_shape)

  @property
  def weights_per_scenario(self) -> tf.Tensor:
    """w [S + 1, S * P]: row s is w_s."""
    return self.learning_rate_multiplier * self.scaled_weights

  def set_fitted(self, tau) -> None:
    """tau [S]: the fitted weight of each scenario (index order)."""
    self.fitted.assign(tf.concat([tf.cast(tau, self.fitted.dtype), [0.0]], 0))

  def call(self, scenario_index, training=None):
    w = tf.gather(self.weights_per_scenario, scenario_index)  # [B, S * P]
    if training:
      return w
    s = self.num_scenarios
    # Row S (an unknown scenario) has tau 0; its position is clipped into range.
    position = self.fitted_signal * s + tf.minimum(tf.cast(scenario_index, tf.int32), s - 1)
    tau = tf.gather(self.fitted, scenario_index)  # [B]
    return w + tau[:, None] * tf.one_hot(position, s * self.num_signals, dtype=w.dtype)

  def get_config(self):
    config = super().get_config()
    config.update({'num_scenarios': self.num_scenarios, 'num_signals': self.num_signals,
                   'learning_rate_multiplier': self.learning_rate_multiplier,
                   'fitted_signal': self.fitted_signal})
    return config
