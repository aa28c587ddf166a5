"""ScenarioPopularityPrior: a learned per-scenario popularity term inside the dot product."""

import tensorflow as tf


class ScenarioPopularityPrior(tf.keras.layers.Layer):
  """Per-scenario weights w_s [S] that the user tower appends to its embedding.

  The item tower appends the item's popularity per served scenario,
  c(i) = log(1 + clicks of i in each scenario during training) [S], to its embedding, so

      <[u; w_s], [v; c(i)]> = <u, v> + sum_j w_s[j] c_j(i)

  adds a popularity prior that each scenario learns for itself (a scenario may rely on its
  own clicks, on another scenario's, or on none), while the item embedding stays
  scenario-independent and one index still serves every scenario. Weights start at the
  identity (w_s = one-hot of s): each scenario begins with its own log-popularity as the
  prior and the towers learn what personalises beyond it. (At zero, a small scenario's
  few examples move its weights too little in a short schedule to matter.)

  Input: scenario index [B] (int; index S, a scenario outside the mapping, has its own
  row). Output: w_s [B, S].
  """

  def __init__(self, num_scenarios: int, **kwargs):
    super().__init__(**kwargs)
    self.num_scenarios = num_scenarios

  def build(self, input_shape):
    self.weights_per_scenario = self.add_weight(  # [S + 1, S]: row s is w_s
        name='weights_per_scenario', shape=(self.num_scenarios + 1, self.num_scenarios),
        initializer=lambda shape, dtype=None: tf.eye(shape[0], shape[1], dtype=dtype))
    super().build(input_shape)

  def call(self, scenario_index):
    return tf.gather(self.weights_per_scenario, scenario_index)  # [B, S]

  def get_config(self):
    config = super().get_config()
    config.update({'num_scenarios': self.num_scenarios})
    return config
