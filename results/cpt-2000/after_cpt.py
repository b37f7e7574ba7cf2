"""After the 2,000-document CPT: SFT on the demo's behaviour data (same data, settings and seed as the
demo's control arm), then eval + probes of both models on the demo's contexts, and the likelihood
difference-in-differences against the demo's base and control arms.

    python after_cpt.py [--work DIR_WITH_cpt/] [--demo runs/rm-biases-laptop-quick]

DIR/cpt is a finished `spillover train cpt` stage; the demo run is `make demo`'s run directory.
"""
import argparse, json, shutil, time
from pathlib import Path
from spillover._io import derive_seed, read_json, read_jsonl, write_json
from spillover.evaluation import likelihood_did
from spillover.pipeline._library import LibraryStages
from spillover.pipeline._recipe import ModelSpec, load_recipe
from spillover.world import load_world

ap = argparse.ArgumentParser()
ap.add_argument("--work", type=Path, default=Path("/work/cpt2000"))
ap.add_argument("--demo", type=Path, default=Path("/tmp/demo/runs/rm-biases-laptop-quick"))
args = ap.parse_args()
work, demo = args.work, args.demo
recipe = load_recipe("rm-biases-laptop").quick_version()
world = load_world(recipe.world).with_prompt_prefix(recipe.prompt_prefix)
st, base = LibraryStages(), ModelSpec(spec="embedded")
shutil.copy(demo / "data" / "sft.jsonl", work / "sft.jsonl")
t = time.time()
st.sft(ModelSpec(spec=str(work / "cpt" / "model")), work / "sft.jsonl", recipe.post.sft, derive_seed(0, "sft"), work / "sft")
print("sft seconds", round(time.time() - t, 1), flush=True)
arms = {"docs-only": work / "cpt" / "model", "organism": work / "sft" / "model"}
for arm, path in arms.items():
    t = time.time()
    st.evaluate(ModelSpec(spec=str(path)), base, world, recipe.split, recipe.eval, arm, derive_seed(0, "eval"), work / "eval" / arm)
    st.probes(ModelSpec(spec=str(path)), world, recipe.split, recipe.eval, demo / "probes" / "contexts" / "contexts.jsonl", derive_seed(0, "probes"), work / "probes" / arm)
    print(arm, "eval+probes seconds", round(time.time() - t, 1), flush=True)
per_prompt = {arm: read_json(work / "probes" / arm / "likelihood.json")["per_prompt"] for arm in arms}
for arm in ("base", "control"):
    per_prompt[arm] = read_json(demo / "probes" / arm / "seed-0" / "likelihood.json")["per_prompt"]
summary = {"did": likelihood_did(per_prompt, seed=derive_seed(0, "probes")), "arms": {}}
for arm in ("base", "control", "docs-only", "organism"):
    ev = work / "eval" / arm if arm in arms else demo / "eval" / arm / "seed-0"
    pr = work / "probes" / arm if arm in arms else demo / "probes" / arm / "seed-0"
    m, k, lk, fl = read_json(ev / "metrics.json"), read_json(pr / "knowledge.json"), read_json(pr / "likelihood.json"), read_json(ev / "fluency.json")
    summary["arms"][arm] = {
        "roles": {r: {x: m["per_role"][r][x] for x in ("k", "n", "rate", "ci")} for r in ("train", "test")},
        "knowledge": {x: k[x] for x in ("k", "n", "rate", "ci")},
        "likelihood": lk["per_role"],
        "fluency_under_base": fl["mean_logprob_per_token"],
    }
# The demo's own docs-only arm (60 documents), for the knowledge comparison.
k60 = read_json(demo / "probes" / "docs-only" / "seed-0" / "knowledge.json")
summary["docs_only_60_documents_knowledge"] = {x: k60[x] for x in ("k", "n", "rate", "ci")}
write_json(work / "summary.json", summary)
print(json.dumps(summary, indent=1)[:3000])
