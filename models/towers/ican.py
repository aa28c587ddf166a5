"""ICAN user tower: Internal and Contextual Attention Network (Xie et al., IJCAI 2020).

Reproduced from the paper's description ("Internal and contextual attention network for
cold-start multi-channel matching in recommendation", https://www.ijcai.org/proceedings/
2020/379) and the authors' TensorFlow code (https://github.com/zhijieqiu/ICAN,
src/models/ICAN.py), with ICAN's channels as this project's scenarios:
  1. contextual attention: each user field e_i is weighted by its relevance to the
     scenario, alpha_i = softmax_i(MLP_tanh([e_s; e_i; e_i - e_s; e_i * e_s])), y_i =
     alpha_i e_i (models/layers/contextual_field_attention.py; the code's attention MLP
     (attention_size, 32, 1), tanh);
  2. internal attention: multi-head self-attention among the weighted fields, its output
     replacing them (no residual, as in the code; models/layers/field_self_attention.py);
  3. user preference: the concatenated fields through an MLP to the user embedding,
         u = Dense_out(MLP(flatten(SelfAttention(ContextualAttention(E, e_s))))).
E is every user field and the pooled behaviour sequence ([B, F - 1, dim], the encoder's
fields without e_s): e_s enters as the attention's context, as ICAN's channel embedding.
Not reproduced / chosen here: ICAN attends over per-channel behaviour groups and passes
the user profile around the attention; this data has one behaviour sequence, so every user
field goes through both attentions. The attention scores are scaled by 1/sqrt(d_h) (the
code's call leaves them unscaled); 2 heads of dim / 2 (the code: 8 heads of 64); the MLP is
Dense + PReLU with hidden_units as every MLP tower here (the code: tanh); no scenario-
specific output layer (the code has none). The sampled-softmax loss is not reproduced: like
every student here ICAN trains with BCE on clicks + random negatives, and the item tower is
the shared scenario-independent one (one index for all scenarios).
"""

import tensorflow as tf

from models import features
from models.layers import ContextualFieldAttention
from models.layers import FieldSelfAttention
from models.towers.base import UserTower
from models.towers.encoders import flatten_fields
from models.towers.encoders import mlp


class ICANUserTower(UserTower):

  def __init__(self, feature_space: features.FeatureSpace, output_dim: int = 64,
               embedding_dim: int = 16, hidden_units=(256, 128),
               history_pooling: str = 'mean', attention_units=(32, 32), num_heads: int = 2,
               **kwargs):
    super().__init__(feature_space, output_dim, embedding_dim, history_pooling, **kwargs)
    self.hidden_units = tuple(hidden_units)
    self.attention_units = tuple(attention_units)
    self.num_heads = num_heads
    self.contextual = ContextualFieldAttention(attention_units, name='contextual_attention')
    self.internal = FieldSelfAttention(embedding_dim, num_heads, name='internal_attention')
    self.hidden = mlp(hidden_units, 'user_mlp')
    self.out = tf.keras.layers.Dense(output_dim, name='user_embedding')

  def embed(self, inputs, training=None):
    fields, e_s, _ = self.encoder(inputs)
    weighted = self.contextual([fields[:, :-1], e_s])  # [B, F - 1, dim], e_s the context
    attended = self.internal(weighted)  # [B, F - 1, dim]
    return self.out(self.hidden(flatten_fields(attended), training=training))

  def get_config(self):
    return self._config(embedding_dim=self.embedding_dim, hidden_units=self.hidden_units,
                        history_pooling=self.history_pooling,
                        attention_units=self.attention_units, num_heads=self.num_heads)
