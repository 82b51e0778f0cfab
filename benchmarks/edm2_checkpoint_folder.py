"""An EDM2 generator folder from a checkpoint of a ``train-generator --architecture edm2-*`` run stopped early
(``--stop-after``): the main network's EMA and the guide's EMA at that step, written as the folder the finished run
writes (:func:`scoremix_ds.generators.edm2.folder.write_edm2_folder`), for measuring a run cut by a time limit.

At step t <= steps, the run equals a t-step run with the same explicit ``guide_steps``: the learning rate does not
decay within a run (t_ref = steps), the power-function EMA depends on t only, and every draw on (seed, step, sample).
``scoremix.json`` records the checkpoint and its step under ``from_checkpoint``.

    python benchmarks/edm2_checkpoint_folder.py CHECKPOINT_DIR --out FOLDER
"""

from __future__ import annotations

import argparse
from pathlib import Path

from scoremix_ds.generators.architectures import get_architecture
from scoremix_ds.generators.edm2.folder import write_edm2_folder
from scoremix_ds.sources.openers import read_real_data
from scoremix_ds.training.checkpoints import Checkpoint


def _net(name: str, config: dict, num_classes: int, model: dict, ema: dict, prefix: str):
    arch = get_architecture(name)
    net = arch.build(config["image_size"], config["channels"], num_classes, arch.resolve(name, {}))
    state = {k[len(prefix):]: v for k, v in model.items() if k.startswith(prefix)}
    state.update(ema)  # the EMA's parameters over the raw ones; buffers as trained
    net.load_state_dict(state, strict=True)
    return net.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    ckpt = Checkpoint(Path(args.checkpoint), 0)
    state = ckpt.state()
    config = state["config"]
    source = read_real_data(config["real_data"])
    model = ckpt.tensors("model")
    main_net = _net(config["architecture"], config, source.num_classes, model, ckpt.tensors("ema"), "main.")
    guide = None
    if "guide_ema" in state:
        from scoremix_ds.generators.architectures import edm2_guide_name

        guide_name = config.get("guide_architecture") or edm2_guide_name(config["architecture"])
        guide = _net(guide_name, config, source.num_classes, model, ckpt.tensors("guide_ema"), "guide.")
    write_edm2_folder(Path(args.out), main_net, list(source.class_names),
                      null_class=source.num_classes if config.get("label_dropout", 0.1) > 0 else None,
                      architecture=config["architecture"], guide=guide,
                      extra={"real_data": config["real_data"],
                             "from_checkpoint": {"path": str(Path(args.checkpoint).resolve()),
                                                 "step": int(state["step"]), "config": config}})
    print(f"wrote {args.out} from step {state['step']}")


if __name__ == "__main__":
    main()
