"""The sweep file: the grid it makes, and one exact message per mistake (esb_hw/explore/sweep.py)."""

from pathlib import Path

import pytest

from esb_hw.explore.sweep import ExploreError, load_sweep, parse_sweep

REPO = Path(__file__).resolve().parents[1]
BASE = 'network = "digits"\nmeasures = ["throughput", "accuracy"]\n'


def write(tmp_path, text: str, name: str = "sweep.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_the_grid_is_the_product_of_the_axes_last_axis_fastest(tmp_path):
    sweep = load_sweep(write(tmp_path, BASE + """
[axes]
format = [{weights = "esb:4:1", activations = 4}, {weights = "uniform:3", activations = "esb:3:3"}]
array = ["8x8", "16x4", "2x2"]
ends_8bit = [false, true]
"engine.entries" = [16]
"""))
    points = sweep.points()
    assert sweep.size == len(points) == 12 and [point.index for point in points] == list(range(12))
    assert points[0].settings == {"weights.bits": 4, "weights.k": 1, "activations.bits": 4, "activations.k": 4,
                                  "array.rows": 8, "array.cols": 8, "ends_8bit": False, "engine.entries": 16}
    # uniform:3 is ESB(3,1); the activations' esb:B:K form is taken as written
    assert points[11].settings == {"weights.bits": 3, "weights.k": 1, "activations.bits": 3, "activations.k": 3,
                                   "array.rows": 2, "array.cols": 2, "ends_8bit": True, "engine.entries": 16}
    assert points[3].choices == {"format": {"weights": "esb:4:1", "activations": 4}, "array": "16x4",
                                 "ends_8bit": True, "engine.entries": 16}
    assert points[3].label() == "format={weights=esb:4:1, activations=4}, array=16x4, ends_8bit=True, " \
                                "engine.entries=16"
    for point in points:  # the search's positions name the same point
        positions = {"format": point.index // 6, "array": point.index // 2 % 3, "ends_8bit": point.index % 2,
                     "engine.entries": 0}
        assert sweep.point_at(positions) == point
    assert sweep.name == "sweep" and sweep.measures == ("throughput", "accuracy")
    assert sweep.options == {"throughput": {}, "accuracy": {"qat": False}}
    assert sweep.timeout == 900 and sweep.retries == 1 and sweep.config.name == "default.toml"


def test_measures_run_in_a_fixed_order_and_options_merge_defaults(tmp_path):
    sweep = load_sweep(write(tmp_path, """
network = "resnet_mnist"
measures = ["accuracy", "resources", "timing"]
timeout = 12.5
retries = 0
[resources]
design = "model"
[timing]
design = "engine"
[accuracy]
qat = true
[axes]
clock_mhz = [200.0, 300]
"""))
    assert sweep.measures == ("resources", "timing", "accuracy")
    assert sweep.options == {"resources": {"design": "model"}, "timing": {"design": "engine"},
                             "accuracy": {"qat": True}}
    assert (sweep.timeout, sweep.retries) == (12.5, 0)


def test_the_shipped_formats_sweep_is_the_readme_frontier():
    sweep = load_sweep(REPO / "examples" / "sweeps" / "formats.toml")
    formats = [(point.settings["weights.bits"], point.settings["weights.k"]) for point in sweep.points()]
    assert formats == [(3, 0), (3, 1), (4, 0), (4, 1), (4, 2), (5, 0), (5, 1), (5, 2), (5, 3), (8, 3), (8, 4),
                       (8, 5), (8, 6)]
    assert all(point.settings["activations.bits"] == point.settings["weights.bits"] for point in sweep.points())


def test_an_onnx_network_is_relative_to_the_sweep_file(tmp_path):
    model = REPO / "esb_hw" / "data" / "digits" / "digits.onnx"
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "mine.onnx").write_bytes(model.read_bytes())
    sweep = load_sweep(write(tmp_path, 'network = "models/mine.onnx"\ndataset = "digits"\n'
                                       'measures = ["accuracy"]\n[axes]\n"array.rows" = [4]\n'))
    assert sweep.network == str((tmp_path / "models" / "mine.onnx").resolve())
    assert sweep.network_sha256() == __import__("hashlib").sha256(model.read_bytes()).hexdigest()


def test_search_objectives_and_constraints(tmp_path):
    sweep = load_sweep(write(tmp_path, """network = "digits"
measures = ["resources", "throughput", "accuracy"]
[axes]
array = ["8x8"]
[search]
objectives = ["max accuracy", " min  lut_per_mac "]
constraints = ["system_lut_model <= 1.5e5", "utilization>=0.5"]
trials = 7
seed = 3
"""))
    search = sweep.search
    assert [str(o) for o in search.objectives] == ["max accuracy", "min lut_per_mac"]
    assert [str(c) for c in search.constraints] == ["system_lut_model <= 150000", "utilization >= 0.5"]
    assert (search.trials, search.seed) == (7, 3)
    upper, lower = search.constraints
    assert upper.holds(150000) and not upper.holds(150001) and not upper.holds(None)
    assert lower.holds(0.5) and not lower.holds(0.49)


@pytest.mark.parametrize(("text", "message"), [
    ("measures = []\n", "measures must be a non-empty list of resources, timing, throughput, accuracy, got []"),
    ('measures = ["speed"]\n', "measures must be a non-empty list of resources, timing, throughput, accuracy, "
                               "got ['speed']"),
    ('measures = ["timing", "timing"]\n', "measures repeats a measure: ['timing', 'timing']"),
    ("", "network is required: digits, mnist5k, resnet_mnist or an .onnx file"),
])
def test_bad_top_level_values(tmp_path, text, message):
    network = "" if "network" in message else 'network = "digits"\n'
    measures = "" if "measures" in message else 'measures = ["throughput"]\n'
    path = write(tmp_path, network + measures + text + '[axes]\narray = ["8x8"]\n')
    with pytest.raises(ExploreError) as error:
        load_sweep(path)
    assert str(error.value) == f"{message} ({path})"


@pytest.mark.parametrize(("text", "message"), [
    ('colour = "red"\n', "unknown key 'colour'; keys: name, config, network, dataset, measures, timeout, retries, "
                         "axes, search, resources, timing, throughput, accuracy"),
    ('name = "a b"\n', "name must be 1..64 characters from A-Z a-z 0-9 _ . -, not starting with a dot, got 'a b'"),
    ('name = ".."\n', "name must be 1..64 characters from A-Z a-z 0-9 _ . -, not starting with a dot, got '..'"),
    ('config = "nonesuch"\n', "config 'nonesuch' is neither a .toml file (relative to this file) nor a shipped "
                               "config"),
    ('config = "../../etc/passwd"\n', "config '../../etc/passwd' is neither a .toml file"),
    ("timeout = 0\n", "timeout must be a number of seconds in (0, 604800], got 0"),
    ("retries = -1\n", "retries must be an integer in 0..10, got -1"),
    ('dataset = "digits"\n', "dataset applies to an .onnx network only; digits is scored on digits"),
    ('[timing]\ndesign = "array"\n', "[timing] sets options of a measure not in measures (throughput, accuracy)"),
    ('[accuracy]\nqat = "yes"\n', "accuracy.qat must be true or false, got 'yes'"),
    ('[accuracy]\nepochs = 2\n', "accuracy.epochs is not an option of accuracy (options: qat)"),
    ('[throughput]\nbatch = 2\n', "throughput.batch is not an option of throughput (options: none)"),
    ('[search]\nobjectives = ["maximize accuracy"]\n', "search.objectives[0] takes \"max METRIC\" or \"min METRIC\", "
                                                        "got 'maximize accuracy'"),
    ('[search]\nobjectives = ["max lut"]\n', "search.objectives[0] needs the 'resources' measure for 'lut'; add it "
                                             "to measures"),
    ('[search]\nobjectives = ["max speed"]\n', "search.objectives[0] names no metric: 'speed' (metrics: lut, ff, "),
    ('[search]\nconstraints = ["accuracy < 0.9"]\n', "search.constraints[0] takes \"METRIC <= NUMBER\" or \"METRIC "
                                                      ">= NUMBER\", got 'accuracy < 0.9'"),
    ('[search]\ntrials = 0\n', "search.trials must be an integer in 1..100000, got 0"),
    ('[search]\nbudget = 3\n', "[search] has unknown key 'budget'; keys: objectives, constraints, trials, seed"),
])
def test_bad_keys_name_themselves(tmp_path, text, message):
    top, _, tables = text.partition("[")
    path = write(tmp_path, BASE + top + '[axes]\narray = ["8x8"]\n' + ("[" + tables if tables else ""))
    with pytest.raises(ExploreError) as error:
        load_sweep(path)
    assert str(error.value).startswith(message) and str(error.value).endswith(f"({path})")


def test_a_design_is_checked_per_measure(tmp_path):
    path = write(tmp_path, 'network = "digits"\nmeasures = ["timing"]\n[timing]\ndesign = "model"\n'
                           '[axes]\narray = ["8x8"]\n')
    with pytest.raises(ExploreError, match=r"^timing\.design must be one of array, engine, system, got 'model'"):
        load_sweep(path)


@pytest.mark.parametrize(("axes", "message"), [
    ("", "[axes] must be a table of at least one axis"),
    ("[axes]\n", "[axes] must be a table of at least one axis"),
    ("[axes]\narray = []\n", "axes.array must be a non-empty list of values"),
    ('[axes]\narray = ["8 by 8"]\n', "axes.array[0] takes \"ROWSxCOLS\", got '8 by 8'"),
    ('[axes]\nweights = ["esb:9:1"]\n', "axes.weights[0] weight format 'esb:9:1': "),
    ('[axes]\nweights = ["apot:4"]\n', "axes.weights[0] 'apot:4' has no hardware mapping (apot runs in the golden "
                                       "model only)"),
    ('[axes]\nweights = [4]\n', "axes.weights[0] takes a format string (esb:B:K, uniform:B, pot:B), got 4"),
    ('[axes]\nactivations = [true]\n', "axes.activations[0] takes a bit width (a plain integer) or \"esb:B:K\" "
                                       "(unsigned), got True"),
    ('[axes]\nends_8bit = [1]\n', "axes.ends_8bit[0] takes true or false, got 1"),
    ('[axes]\nscale_method = ["l2"]\n', "axes.scale_method[0] takes one of dda, mse, max, got 'l2'"),
    ('[axes]\nbatch = [0]\n', "axes.batch[0] takes a positive integer, got 0"),
    ('[axes]\nrows = [8]\n', "axes.rows[0] is not a setting; settings: weights, activations, array, ends_8bit, "),
    ('[axes]\n"array.rows" = [[8, 16]]\n', "axes.array.rows[0] takes a single value, got [8, 16]"),
    ('[axes]\narray = ["8x8", "8x8"]\n', "axes.array repeats a value"),
    ('[axes]\narray = ["8x8"]\n"array.rows" = [4]\n', "axes.array.rows sets 'array.rows', which axis 'array' sets "
                                                      "too"),
    ('[axes]\nf = [{weights = "esb:4:1", colour = 1}]\n', "axes.f[0].colour is not a setting"),
    ('[axes]\nf = [{weights = "esb:4:1", "weights.bits" = 5}]\n', "axes.f[0] sets 'weights.bits' twice (through "
                                                                  "'weights.bits')"),
    ('[axes]\n"array.rows" = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\n"array.cols" = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\n'
     '"engine.entries" = [4, 8, 12, 16, 20, 24, 28, 32, 36, 40]\n"clock_mhz" = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\n'
     '"max_reduction" = [100, 200, 300, 400, 500, 600, 700, 800, 900, 1000, 1100]\n',
     "[axes] make 110,000 points, more than 100,000"),
])
def test_bad_axes(tmp_path, axes, message):
    path = write(tmp_path, BASE + axes)
    with pytest.raises(ExploreError) as error:
        load_sweep(path)
    assert str(error.value).startswith(message) and str(error.value).endswith(f"({path})")


def test_files_that_cannot_be_read(tmp_path):
    with pytest.raises(ExploreError, match=r"nothere\.toml: no such sweep file$"):
        load_sweep(tmp_path / "nothere.toml")
    with pytest.raises(ExploreError, match=r": is a folder, not a sweep file$"):
        load_sweep(tmp_path)
    with pytest.raises(ExploreError, match=r"bad\.toml: invalid TOML: "):
        load_sweep(write(tmp_path, "network = \n", "bad.toml"))
    with pytest.raises(ExploreError, match=r"network 'x\.onnx': no such file"):
        load_sweep(write(tmp_path, 'network = "x.onnx"\nmeasures = ["throughput"]\n[axes]\narray = ["8x8"]\n'))
    with pytest.raises(ExploreError, match=r"network must be one of digits, mnist5k, resnet_mnist or an \.onnx file, "
                                           r"got 'resnet18'"):
        load_sweep(write(tmp_path, 'network = "resnet18"\nmeasures = ["throughput"]\n[axes]\narray = ["8x8"]\n'))
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"")
    with pytest.raises(ExploreError, match=r"dataset is required for the accuracy of an \.onnx network"):
        load_sweep(write(tmp_path, 'network = "m.onnx"\nmeasures = ["accuracy"]\n[axes]\narray = ["8x8"]\n'))


def test_a_base_config_that_is_not_valid_is_a_mistake_in_the_file(tmp_path):
    (tmp_path / "mine.toml").write_text("[array]\nrows = 0\n")
    path = write(tmp_path, 'config = "mine.toml"\nnetwork = "digits"\nmeasures = ["throughput"]\n[axes]\n'
                           'array = ["8x8"]\n')
    with pytest.raises(ExploreError, match=r"^config is not a valid config: .*\(.*sweep\.toml\)$"):
        load_sweep(path)


def test_the_explore_error_is_bad_input():
    error = ExploreError("x")
    assert error.exit_code == 2 and isinstance(error, ValueError)
    with pytest.raises(ExploreError):
        parse_sweep({"network": "digits", "measures": ["throughput"], "axes": {"array": ["8x8"]},
                     "config": 3}, Path("inline.toml"))
