"""Pure maths, no IO and no logging: functions of arrays and tensors (and the constant tables naming them).

- :mod:`.mixing`: the ScoreMix rule (convex mix of class-conditioned outputs, guidance, weight schedules);
- :mod:`.centres`: class centres and cosine distances; :mod:`.topk`: the same at scale, in row blocks;
- :mod:`.pair_strategies` (the strategies, :data:`~.pair_strategies.STRATEGIES`), :mod:`.selection` (tuples straight from class vectors)
  and :mod:`.extreme_greedy` (the capped greedy of ``distant`` / ``close`` at any class count);
- :mod:`.alignment`: representation-alignment measures between two spaces;
- :mod:`.margins`: ArcFace / CosFace / AdaFace margin heads for recognition training (:data:`~.margins.HEADS`).
"""
