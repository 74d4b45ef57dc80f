"""The few-shot count a run records is the count every item got. CMMLU's dev and test
files number their items alike (anatomy-0 in both), and once the item itself was found in
the dev pool by id, so the first test items of each subject got one example fewer."""

from aimed.harness.runner import RunOptions, build_requests
from aimed.harness.taskregistry import resolve_tasks


def _examples_in(context: str, prefix: str) -> int:
    return context.count(prefix) - 1  # one answer prefix opens the item's own answer


def test_every_cmmlu_item_gets_the_examples_n_shot_says(data_dir):
    for name in ("cmmlu_anatomy", "cmmlu_virology"):
        task = resolve_tasks([name])[0]
        dev_ids = {s.id for s in task.fewshot_pool()}
        assert {f"{name.split('_', 1)[1]}-{i}" for i in range(5)} <= {s.id for s in task.samples()} & dev_ids
        _, records, k, _ = build_requests(task, RunOptions(num_fewshot=5, limit=40))
        assert k == 5
        counts = [_examples_in(r["arguments"]["context"], task.spec.answer_prefix) for r in records]
        assert counts == [5] * 40, counts[:8]


def test_more_examples_than_the_dev_file_holds_is_refused(cli, tiny_llama, tmp_path, data_dir):
    code, _, err = cli("run", "--model", tiny_llama, "--tasks", "cmmlu_anatomy", "--num_fewshot", "6",
                       "--output_dir", tmp_path / "r", "--no_cache", "--no_index")
    assert code == 2 and "holds 5" in err and "lower --num_fewshot to 5" in err and not (tmp_path / "r").exists()
