"""params.yaml validation: bad values fail before any work, naming key, value and choices."""

from pathlib import Path

import pytest
import yaml
from shipped import shipped_params

from ser.config import Params, load_params
from ser.errors import ConfigError
from ser.models import classifiers

ROOT = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, **overrides) -> Path:
    params = yaml.safe_load(shipped_params(tmp_path).read_text())
    for dotted, value in overrides.items():
        node = params
        *parents, leaf = dotted.split("__")
        for key in parents:
            node = node[key]
        node[leaf] = value
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def test_repository_params_are_valid(tmp_path):
    load_params(ROOT / "params.yaml")  # the workspace copy, whatever dvc exp run -S left in it
    params = load_params(shipped_params(tmp_path))  # the defaults as committed
    assert params.dataset == "cremad"
    assert params.cv.folds == 5 and params.cv.group_by == "speaker"


@pytest.mark.parametrize("key, value, words", [
    ("dataset", "iemocap", ["dataset", "'iemocap'", "cremad", "ravdess", "synthetic"]),
    ("classifier", "forest", ["classifier", "'forest'", "svm"]),
    ("features__extractor", "spectrogram", ["features.extractor", "'spectrogram'", "mfcc"]),
    ("cv__folds", "five", ["cv.folds", "'five'"]),
    ("cv__group_by", "actor", ["cv.group_by", "'actor'", "speaker", "none"]),
    ("data__labels", "angry", ["data.labels", "'angry'"]),
    ("svm__C", -1, ["svm.C", "-1", "greater than 0"]),
    ("mlp__hidden", [64], ["mlp.hidden", "[64]", "at least 2"]),
    ("xgboost__device", "mps", ["xgboost.device", "'mps'", "'cuda'"]),
])
def test_bad_value_names_key_value_and_choices(tmp_path, key, value, words):
    with pytest.raises(ConfigError) as err:
        load_params(write(tmp_path, **{key: value}))
    for word in words:
        assert word in str(err.value)


def test_unknown_key_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"cv\.fold: unknown key"):
        load_params(write(tmp_path, cv__fold=3))
    with pytest.raises(ConfigError, match=r"svm\.c: unknown key"):
        load_params(write(tmp_path, svm__c=3))


def test_each_classifier_group_is_its_modules_params_model():
    for name in classifiers.REGISTRY:
        group = classifiers.get(name).Params
        assert Params.model_fields[name].annotation is group
        assert getattr(Params(), name) == group()


def test_missing_local_corpus_folder_fails_before_work(tmp_path):
    path = write(tmp_path, dataset="ravdess", data__dir=str(tmp_path / "nowhere"))
    load_params(path)  # the other stages never read the corpus
    with pytest.raises(ConfigError, match=r"data\.dir: .*nowhere.* is not a folder"):
        load_params(path, need_data=True)


def test_folder_dataset_needs_an_existing_csv(tmp_path):
    path = write(tmp_path, dataset="folder", data__csv=str(tmp_path / "clips.csv"))
    with pytest.raises(ConfigError, match=r"data\.csv: .*clips\.csv.* does not exist"):
        load_params(path, need_data=True)


def test_default_corpus_folder_follows_the_dataset(tmp_path):
    params = load_params(write(tmp_path, dataset="tess"))
    assert params.data.root(params.dataset) == Path("data/raw/tess")


def test_parallel_tuning_threads_are_refused_where_trials_would_share_state(tmp_path):
    with pytest.raises(ConfigError, match=r"tune.n_jobs: 2 threads cannot tune mlp: .*process-global torch state"):
        load_params(write(tmp_path, classifier="mlp", tune__n_jobs=2))
    for name in ("svm", "xgboost"):  # scikit-learn / XGBoost fits share no global state
        assert load_params(write(tmp_path, classifier=name, tune__n_jobs=2)).tune.n_jobs == 2


def test_numbers_where_text_is_needed_say_to_quote_them(tmp_path):
    with pytest.raises(ConfigError, match=r"data.labels.0: 1 is invalid: .*quote it, e.g. '01'"):
        load_params(write(tmp_path, data__labels=[1, 2]))
