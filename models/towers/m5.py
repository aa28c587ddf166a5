"""M5 user tower: Multi-modal Multi-interest Multi-scenario Matching (Zhao et al., KDD 2023).

Reproduced from the public abstract ("M5: Multi-modal multi-interest multi-scenario
matching for over-the-top recommendation", https://doi.org/10.1145/3580305.3599863); the
method section and code are not public, so the layers below are this project's reading of
it, in the ID modality only:
  1. subsidiary decoration: each click is its item embedding plus the embedding of the
     scenario it happened in (v_l, the encoder's unpooled behaviour sequence);
  2. multi-interest extraction: K self-attentive interest heads over the clicks,
     I_k = sum_l softmax_l(w_k . tanh(v_l W_1)) v_l, and a scenario-aware readout,
     m = sum_k softmax_k(I_k . (e_s W_q) / sqrt(dim)) I_k
     (models/layers/multi_interest_extraction.py);
  3. feature-level scenario crossing: every field crossed with the scenario indicator,
     e_i' = e_i * (1 + e_s) (the field plus its Hadamard cross with e_s);
  4. model-level: a Split Mixture-of-Experts, K shared experts and one expert per
     scenario mixed by the scenario's gate on the input
     (models/layers/split_mixture_of_experts.py), then the output layer:
         u = Dense_out(SplitMoE([flatten(E'); m] | s)).
K shared experts = model.num_experts, expert width = model.expert_units.
Not reproduced: the multi-modal part (content-graph embeddings pre-trained on a
metagraph, the mirrored ID / CG towers and the weighted candidate matching layer that
merges their scores): this data has no content graph, so there is one (ID) modality and
one score; the behavioural categorisation by genre (no item category in the sequence: the
interest heads learn soft categories), the masked-language-model augmented self-attention
and the subsidiary-intensity calibration (no watch intensity in the sequence). "Split MoE"
is read here as shared + scenario-specific experts (PLE-style); the interest readout by the
scenario is this project's choice (a two-tower user side cannot use the target item). Like
every student here M5 trains with BCE on clicks + random negatives; the item tower is the
shared scenario-independent one (one index for all scenarios).
"""

import tensorflow as tf

from models import features
from models.layers import MultiInterestExtraction
from models.layers import SplitMixtureOfExperts
from models.towers.base import UserTower
from models.towers.encoders import flatten_fields


class M5UserTower(UserTower):

  def __init__(self, feature_space: features.FeatureSpace, output_dim: int = 64,
               embedding_dim: int = 16, num_experts: int = 3, expert_units: int = 128,
               history_pooling: str = 'mean', num_interests: int = 4,
               interest_units: int = 32, **kwargs):
    super().__init__(feature_space, output_dim, embedding_dim, history_pooling, **kwargs)
    self.num_experts, self.expert_units = num_experts, expert_units
    self.num_interests, self.interest_units = num_interests, interest_units
    self.interests = MultiInterestExtraction(num_interests, interest_units,
                                             name='multi_interest')
    self.mixture = SplitMixtureOfExperts(expert_units, len(feature_space.scenarios),
                                         num_experts, name='split_moe')
    self.out = tf.keras.layers.Dense(output_dim, name='user_embedding')

  def embed(self, inputs, training=None):
    fields, e_s, d, (sequence, mask, _) = self.encoder(inputs, return_sequence=True)
    crossed = fields * (1.0 + e_s[:, None, :])  # [B, F, dim], crossed with the scenario
    interest = self.interests([sequence, mask, e_s])  # [B, dim]
    x = tf.concat([flatten_fields(crossed), interest], axis=1)  # [B, F dim + dim]
    return self.out(self.mixture([x, d]))

  def get_config(self):
    return self._config(embedding_dim=self.embedding_dim, num_experts=self.num_experts,
                        expert_units=self.expert_units, history_pooling=self.history_pooling,
                        num_interests=self.num_interests, interest_units=self.interest_units)
