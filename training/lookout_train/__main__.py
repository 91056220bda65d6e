"""python -m lookout_train <command> [args]: commands tiny, golden, export, train, eval, florence, domain, hub, families.

Run with PYTHONPATH=training (the scripts set it) or from inside training/.
"""
import sys


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    cmds = {
        "tiny": "lookout_train.tiny",
        "golden": "lookout_train.golden",
        "export": "lookout_train.export",
        "train": "lookout_train.train",
        "eval": "lookout_train.evaluate",
        "florence": "lookout_train.florence",
        "domain": "lookout_train.domain",
        "hub": "lookout_train.hub",
        "families": "lookout_train.families",
    }
    if not argv or argv[0] not in cmds:
        print(f"usage: python -m lookout_train {{{','.join(cmds)}}} [args] (-h for help)", file=sys.stderr)
        return 2
    import importlib

    mod = importlib.import_module(cmds[argv[0]])
    return mod.main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
