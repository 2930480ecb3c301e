"""Interactive panels for JupyterLab (ipywidgets). Notebooks place them; the core never imports
this module."""

from __future__ import annotations

import io
import threading

import ipywidgets as w
import matplotlib.pyplot as plt
import pandas as pd
import torch
from IPython.display import display
from matplotlib.figure import Figure

from .data import MultiTaskData
from .experiments import compare_models, get_profile, summary_table
from .plots import learning_curves


class QuickstartPanel:
    """Sliders for learning rate, hidden size and epochs: releasing a slider (or pressing Run)
    retrains the models on a subsample of `data` (at most `max_rows` training rows, so a run takes
    seconds) and redraws the learning curves and the AUC table."""

    def __init__(
        self,
        data: MultiTaskData,
        models=("single_task", "shared_bottom"),
        device: str = "auto",
        seed: int = 0,
        max_rows: int = 10_000,
    ):
        self.data = data.subsample(min(1.0, max_rows / len(data.train)), seed)
        self.models = tuple(models)
        self.profile = get_profile("quick", seeds=[seed], device=device)
        self.lr = w.FloatLogSlider(
            value=1e-3,
            base=10,
            min=-4,
            max=-1,
            step=0.25,
            description="learning rate",
            continuous_update=False,
            style={"description_width": "initial"},
        )
        self.hidden = w.IntSlider(
            value=128,
            min=16,
            max=512,
            step=16,
            description="hidden size",
            continuous_update=False,
            style={"description_width": "initial"},
        )
        self.epochs = w.IntSlider(
            value=self.profile.epochs,
            min=1,
            max=20,
            description="epochs",
            continuous_update=False,
            style={"description_width": "initial"},
        )
        self.button = w.Button(description="Run", button_style="primary", icon="play")
        self.status = w.Label()
        self.output = w.Output()
        self.button.on_click(lambda _: self.run())
        for slider in (self.lr, self.hidden, self.epochs):  # a moved slider retrains and redraws at once
            slider.observe(lambda _: self.run(), names="value")
        self.widget = w.VBox(
            [w.HBox([self.lr, self.hidden, self.epochs]), w.HBox([self.button, self.status]), self.output]
        )
        self.runs = 0
        self.last_table = None

    def model_options(self) -> dict:
        h = self.hidden.value
        return {m: {"bottom": (h, max(8, h // 2))} for m in self.models}

    def run(self):
        """Retrain with the current slider values and redraw; returns the AUC table."""
        self.button.disabled = True
        self.status.value = f"training {', '.join(self.models)} …"
        try:
            results, histories = compare_models(
                self.data,
                self.models,
                self.profile,
                self.model_options(),
                lr=self.lr.value,
                epochs=self.epochs.value,
                patience=0,
                quiet=True,
            )
            self.last_table = summary_table(results)
            self.runs += 1
            with self.output:
                self.output.clear_output(wait=True)
                fig = learning_curves(histories, self.data.tasks)
                display(fig)
                plt.close(fig)
                display(self.last_table)
            self.status.value = (
                f"run {self.runs}: lr={self.lr.value:.0e}, hidden={self.hidden.value}, epochs={self.epochs.value}"
            )
        finally:
            self.button.disabled = False
        return self.last_table

    def _ipython_display_(self):
        display(self.widget)


NEW_TASK_CHOICES = (
    "education",
    "bachelors",
    "sex",
    "race=White",
    "citizenship=Native- Born in the United States",
    "full_or_part_time_employment_stat=Children or Armed Forces",
)


class NewTaskPanel:
    """Pick the new task T3, the adversarial weight β_cls of MPT-Rec pre-training and the prompt
    temperature T, press Run: `experiment(new_task, beta_cls, temperature)` retrains on a small
    subsample (one seed) and returns (table, figure), which are shown."""

    def __init__(self, experiment, new_task: str = "education", beta_cls: float = 0.1, temperature: float = 150.0):
        self.experiment = experiment
        style = {"description_width": "initial"}
        self.new_task = w.Dropdown(options=NEW_TASK_CHOICES, value=new_task, description="new task T3", style=style)
        self.beta_cls = w.FloatSlider(
            value=beta_cls,
            min=0.0,
            max=1.0,
            step=0.05,
            description="adversarial weight β",
            continuous_update=False,
            style=style,
        )
        self.temperature = w.FloatLogSlider(
            value=temperature,
            base=10,
            min=0,
            max=3,
            step=0.1,
            description="prompt temperature T",
            continuous_update=False,
            style=style,
        )
        self.button = w.Button(description="Run", button_style="primary", icon="play")
        self.status, self.output = w.Label(), w.Output()
        self.button.on_click(lambda _: self.run())
        self.widget = w.VBox(
            [w.HBox([self.new_task, self.beta_cls, self.temperature]), w.HBox([self.button, self.status]), self.output]
        )
        self.runs, self.last_table = 0, None

    def run(self):
        self.button.disabled = True
        self.status.value = f"training with T3 = {self.new_task.value} …"
        try:
            table, fig = self.experiment(self.new_task.value, self.beta_cls.value, self.temperature.value)
            self.runs, self.last_table = self.runs + 1, table
            with self.output:
                self.output.clear_output(wait=True)
                display(fig)
                plt.close(fig)
                display(table)
            self.status.value = (
                f"run {self.runs}: T3 = {self.new_task.value}, β = {self.beta_cls.value:.2f}, "
                f"T = {self.temperature.value:.0f}"
            )
        finally:
            self.button.disabled = False
        return table

    def _ipython_display_(self):
        display(self.widget)


def _small_profile(device: str):
    return get_profile("quick", seeds=[0], device=device, subsample=0.05)


def negative_transfer_panel(device: str = "auto", models=("shared_bottom", "mmoe", "mpt_rec")) -> NewTaskPanel:
    from .experiments.new_task_tables import negative_transfer, summarize_negative_transfer
    from .plots import negative_transfer_bars

    def experiment(new_task, beta_cls, temperature):
        runs, _ = negative_transfer(_small_profile(device), [new_task], models, {"mpt_rec": {"beta_cls": beta_cls}})
        return summarize_negative_transfer(runs), negative_transfer_bars(runs)

    return NewTaskPanel(experiment)


def prompt_tuning_panel(device: str = "auto") -> NewTaskPanel:
    from .experiments.new_task_tables import load_new_task_data, new_task_table, summarize_new_task
    from .plots import metric_bars

    def experiment(new_task, beta_cls, temperature):
        profile = _small_profile(device)
        table = new_task_table(
            load_new_task_data(new_task, profile),
            profile,
            ["shared_bottom", "mpt_rec"],
            include_maml=False,
            model_options={"mpt_rec": {"beta_cls": beta_cls}},
            head_options={"mpt_rec": {"temperature": temperature}},
        )
        bars = table.assign(task=new_task, auc=table["t3_auc"])
        return summarize_new_task(table), metric_bars(bars, title="T3 test AUC after fine-tuning")

    return NewTaskPanel(experiment)


def ablation_panel(device: str = "auto") -> NewTaskPanel:
    from .experiments.ablations import prompt_ablations
    from .experiments.new_task_tables import load_new_task_data
    from .plots import ablation_bars

    def experiment(new_task, beta_cls, temperature):
        profile = _small_profile(device)
        table = prompt_ablations(load_new_task_data(new_task, profile), profile, beta_cls, temperature)
        return table, ablation_bars(table)

    return NewTaskPanel(experiment)


def tsne_panel(device: str = "auto") -> NewTaskPanel:
    from .experiments.ablations import tsne_study
    from .experiments.new_task_tables import load_new_task_data
    from .plots import tsne_panels

    def experiment(new_task, beta_cls, temperature):
        profile = _small_profile(device)
        data3 = load_new_task_data(new_task, profile)
        points, scores = tsne_study(
            data3.select_tasks(data3.tasks[:2]),
            profile,
            ("mpt_rec",),
            n=400,
            model_options={"mpt_rec": {"beta_cls": beta_cls}},
        )
        return scores, tsne_panels(points, scores)

    return NewTaskPanel(experiment)


class AlphaTauPanel:
    """Sliders for PMTRec's Task Focusing base α and balancing temperature τ: releasing one (or
    pressing Run) retrains PMTRec on `data` (one seed, `epochs` epochs) and shows its test metrics,
    the grid's best cell for comparison, and how the per-user task weights came out."""

    def __init__(
        self,
        data,
        device: str = "auto",
        epochs: int = 5,
        alpha: float = 1.1,
        tau: float = 1.0,
        grid: pd.DataFrame | None = None,
        seed: int = 0,
    ):
        from .experiments.pmtrec import best_cell

        self.data, self.epochs, self.seed = data, epochs, seed
        self.profile = get_profile("quick", seeds=[seed], device=device)
        self.best = best_cell(grid) if grid is not None else None
        style = {"description_width": "initial"}
        self.alpha = w.FloatSlider(
            value=alpha,
            min=1.0,
            max=1.5,
            step=0.05,
            description="α (Task Focusing)",
            continuous_update=False,
            style=style,
        )
        self.tau = w.FloatLogSlider(
            value=tau,
            base=10,
            min=-1,
            max=1,
            step=0.1,
            description="τ (balancing)",
            continuous_update=False,
            style=style,
        )
        self.button = w.Button(description="Run", button_style="primary", icon="play")
        self.status, self.output = w.Label(), w.Output()
        self.button.on_click(lambda _: self.run())
        for slider in (self.alpha, self.tau):
            slider.observe(lambda _: self.run(), names="value")
        self.widget = w.VBox([w.HBox([self.alpha, self.tau]), w.HBox([self.button, self.status]), self.output])
        self.runs, self.last_test = 0, None

    def run(self) -> dict:
        from .experiments.pmtrec import weight_trajectory
        from .plots import user_weight_figure

        self.button.disabled = True
        self.status.value = f"training PMTRec with α = {self.alpha.value:.2f}, τ = {self.tau.value:.2f} …"
        try:
            trajectory = weight_trajectory(
                self.data,
                self.profile,
                self.seed,
                epochs=self.epochs,
                patience=0,
                weighting_options={"alpha": self.alpha.value, "tau": self.tau.value},
            )
            self.runs, self.last_test = self.runs + 1, trajectory.attrs["test"]
            with self.output:
                self.output.clear_output(wait=True)
                fig = user_weight_figure(trajectory)
                display(fig)
                plt.close(fig)
            best = (
                f"; grid best: α = {self.best['alpha']}, τ = {self.best['tau']} → {self.best['score']:.4f}"
                if self.best
                else ""
            )
            self.status.value = (
                f"run {self.runs}: α = {self.alpha.value:.2f}, τ = {self.tau.value:.2f} → "
                f"NDCG@40 {self.last_test['ndcg@40']:.4f}, Recall@40 {self.last_test['recall@40']:.4f}"
                f" ({self.epochs} epochs, seed {self.seed}){best}"
            )
        finally:
            self.button.disabled = False
        return self.last_test

    def _ipython_display_(self):
        display(self.widget)


class GradientLabPanel:
    """Sliders for the task correlation ρ and the number of tasks, and a strategy: Run (or a moved
    slider) trains the lab's narrow Shared Bottom with EW and with the strategy, and Single Task, on
    synthetic tasks at that ρ (two seeds, seconds), and shows the gradient cosine and the share of
    conflicting steps over training, and each one's Δm over Single Task with its spread."""

    def __init__(self, rho: float = 0.5, n_tasks: int = 2, strategy: str = "pcgrad", device: str = "auto"):
        from .weighting import STRATEGIES

        style = {"description_width": "initial"}
        self.profile = get_profile("quick", seeds=[0, 1], device=device)
        self.rho = w.FloatSlider(
            value=rho,
            min=0.0,
            max=1.0,
            step=0.1,
            description="task correlation ρ",
            continuous_update=False,
            style=style,
        )
        self.n_tasks = w.IntSlider(
            value=n_tasks, min=2, max=5, description="tasks", continuous_update=False, style=style
        )
        self.strategy = w.Dropdown(
            options=[s for s in STRATEGIES if s not in ("ew", "pmtrec")],
            value=strategy,
            description="strategy",
            style=style,
        )
        self.button = w.Button(description="Run", button_style="primary", icon="play")
        self.status, self.output = w.Label(), w.Output()
        self.button.on_click(lambda _: self.run())
        for control in (self.rho, self.n_tasks, self.strategy):
            control.observe(lambda _: self.run(), names="value")
        self.widget = w.VBox(
            [w.HBox([self.rho, self.n_tasks, self.strategy]), w.HBox([self.button, self.status]), self.output]
        )
        self.runs, self.last_table = 0, None

    def run(self) -> pd.DataFrame:
        from .experiments.gradient_lab import conflict_study, lab_delta_m
        from .plots import conflict_curves

        self.button.disabled = True
        self.status.value = f"training at ρ = {self.rho.value:.1f} with {self.n_tasks.value} tasks …"
        try:
            runs, histories = conflict_study(
                self.profile, [self.rho.value], self.n_tasks.value, ["ew", self.strategy.value]
            )
            delta = lab_delta_m(runs)
            measured = (
                runs.drop_duplicates(["strategy", "seed"])
                .groupby("strategy", sort=False)[["cos_mean", "conflict_mean"]]
                .mean()
            )
            self.last_table = delta.set_index("strategy")[["Δm % (mean ± std)", "p_paired"]].join(measured)
            self.runs += 1
            with self.output:
                self.output.clear_output(wait=True)
                for strategy in ("ew", self.strategy.value):
                    fig = conflict_curves(histories, strategy)
                    display(fig)
                    plt.close(fig)
                display(self.last_table)
            self.status.value = f"run {self.runs}: ρ = {self.rho.value:.1f}, {self.n_tasks.value} tasks"
        finally:
            self.button.disabled = False
        return self.last_table

    def _ipython_display_(self):
        display(self.widget)


class Explorer:
    """Pick a dataset, a model (any registered one), tasks, a weighting strategy and hyperparameters;
    Run trains in a background thread while the figure redraws after every epoch: the learning
    curve, the validation metric, the cosine between the tasks' gradients on the shared parameters
    (train.diagnostics) and the weights the strategy gave; Stop ends the run after the current
    epoch; every finished run is added to a results table for comparison.

    Figures go to an Image widget and tables to an HTML widget, both updated as widget state, which
    is safe from the training thread (an Output widget is not)."""

    DIAGNOSTICS_PER_EPOCH = 8  # measured steps an epoch for the live gradient panels

    def __init__(self, device: str = "auto", subsample: float = 0.05):
        from .data import DATASETS, REC_DATASETS

        style = {"description_width": "initial"}
        self.device = device
        self.dataset = w.Dropdown(
            options=[*DATASETS, *REC_DATASETS], value="census-income", description="dataset", style=style
        )
        self.model = w.Dropdown(description="model", style=style)
        self.tasks = w.SelectMultiple(description="tasks", rows=4, style=style)
        self.weighting = w.Dropdown(description="weighting", style=style)
        self.lr = w.FloatLogSlider(
            value=1e-3, base=10, min=-4, max=-1, step=0.25, description="learning rate", style=style
        )
        self.epochs = w.IntSlider(value=5, min=1, max=30, description="epochs", style=style)
        self.batch = w.Dropdown(options=[128, 256, 512, 1024, 2048, 4096], value=512, description="batch", style=style)
        self.subsample = w.FloatLogSlider(
            value=subsample, base=10, min=-2, max=0, step=0.1, description="data fraction", style=style
        )
        self.run_button = w.Button(description="Run", button_style="primary", icon="play")
        self.stop_button = w.Button(description="Stop", button_style="warning", icon="stop", disabled=True)
        self.progress = w.IntProgress(min=0, max=1, description="epochs")
        self.status = w.Label()
        self.curve = w.Image(format="png")
        self.table = w.HTML()
        self.model_file = w.Text(
            placeholder="runs/models/<dataset>-<model>.safetensors", description="model file", style=style
        )
        self.save_button = w.Button(description="Save model", icon="save", disabled=True)
        self.use = w.HTML()  # after a save: how to predict, and the saved model's predictions of test rows
        self.last = None  # the latest finished run (experiments.RunResult): the model Save writes
        self.save_button.on_click(lambda _: self._save_clicked())
        self.dataset.observe(lambda _: self._task_options(), names="value")
        self.model.observe(lambda change: self._model_tasks(change["old"]), names="value")
        self._task_options()
        self.run_button.on_click(lambda _: self.run(wait=False))
        self.stop_button.on_click(lambda _: self._stop.set())
        self.widget = w.VBox(
            [
                w.HBox([self.dataset, self.model, self.weighting]),
                w.HBox([self.tasks, w.VBox([self.lr, self.epochs, self.batch, self.subsample])]),
                w.HBox([self.run_button, self.stop_button, self.progress, self.status]),
                self.curve,
                self.table,
                w.HBox([self.model_file, self.save_button]),
                self.use,
            ]
        )
        self.results: list[dict] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _task_options(self):
        """The models, tasks and weighting strategies that fit the chosen dataset, from the registries: a
        recommendation dataset trains MF on rec and its auxiliary tasks (without the strategies that keep
        a state per shared element: MF shares the rows each batch reads); the funnel datasets
        (`FUNNEL_DATASETS`) every tabular model, the funnel ones included; the other tabular datasets
        every tabular model but the funnel ones."""
        from .data import DATASETS, FUNNEL_DATASETS, REC_DATASETS, default_tasks_of, kind_of, task_kinds_of
        from .models import MODELS, trains_on
        from .weighting import STRATEGIES

        name = self.dataset.value
        rec = name in REC_DATASETS
        if rec:
            names = list(REC_DATASETS[name][2])
        else:
            names = [t for t in DATASETS[name][2] if t not in ("column=value", "t1 … tN")]
            names = ["t1", "t2", "t3"] if name == "synthetic" else names
        kind = kind_of(name)
        kinds = task_kinds_of(name, default_tasks_of(name) or names)  # those of the tasks it starts with
        models = sorted(m for m, cls in MODELS.items() if not trains_on(cls, kind, names, kinds))
        default = "mf" if rec else "esmm" if name in FUNNEL_DATASETS else "mmoe"
        chosen = self.model.value if self.model.value in models else default
        self.tasks.options = names  # first: a change of model below picks among these
        self.model.options, self.model.value = models, chosen
        self._model_tasks()
        titles = [cls.title for cls in STRATEGIES.values() if not (rec and cls.per_element_state)]
        keep = self.weighting.value if self.weighting.value in titles else STRATEGIES["ew"].title
        self.weighting.options, self.weighting.value = titles, keep

    def _model_tasks(self, previous: str | None = None) -> None:
        """The chosen model's tasks: all it predicts where it declares them (the funnel models: ctr, cvr,
        ctcvr); coming from such a model (or to a new dataset), the dataset's first two; else the user's
        choice stays."""
        from .models import MODELS

        required = MODELS[self.model.value].required_tasks if self.model.value in MODELS else None
        came_from = MODELS[previous].required_tasks if previous in MODELS else None
        if required:
            self.tasks.value = tuple(required)
        elif previous is None or came_from or not self.tasks.value:
            self.tasks.value = tuple(self.tasks.options[:2])

    def _strategy(self) -> str:
        """The registry name of the chosen strategy (the dropdown shows titles)."""
        from .weighting import STRATEGIES

        return next(name for name, cls in STRATEGIES.items() if cls.title == self.weighting.value)

    def run(self, wait: bool = True):
        """Train with the current choices; `wait=False` (the Run button) trains in a thread."""
        if self._thread and self._thread.is_alive():
            return None
        self._stop.clear()
        if wait:
            return self._train()
        self._thread = threading.Thread(target=self._train, daemon=True)
        self._thread.start()
        return None

    def _train(self):
        from .data.task_kinds import main_metric_of
        from .experiments import get_profile, load_for_profile, train_one

        self.run_button.disabled, self.stop_button.disabled = True, False
        self.last, self.save_button.disabled = None, True  # Save writes this run's model, or none
        history: list[dict] = []
        try:
            tasks = list(self.tasks.value)
            if not tasks:
                raise ValueError("pick at least one task")
            from .data import kind_of, task_kinds_of
            from .models import MODELS, trains_on

            name = self.dataset.value
            why = trains_on(MODELS[self.model.value], kind_of(name), tasks, task_kinds_of(name, tasks))
            if why:
                raise ValueError(f"{why}: pick those tasks or another model")
            profile = get_profile("quick", seeds=[0], device=self.device, subsample=self.subsample.value)
            self.status.value = f"loading {self.dataset.value} …"
            options = {"n_tasks": 3, "n_samples": 20_000} if self.dataset.value == "synthetic" else {}
            data = load_for_profile(self.dataset.value, tasks, profile, **options)
            rec = self.model.value == "mf"
            if rec and tasks[0] != "rec":
                raise ValueError("a recommender's tasks start with rec: pick rec and any auxiliary tasks")
            self.progress.max, self.progress.value = self.epochs.value, 0
            self.status.value = f"training {self.model.value} on {', '.join(tasks)} …"

            def on_epoch(row, strategy):
                history.append(row)
                self.progress.value = row["epoch"]
                self.curve.value = _png(_curve_figure(history, tasks))
                return self._stop.is_set()

            out = train_one(
                self.model.value,
                data,
                profile,
                0,
                lr=self.lr.value,
                epochs=self.epochs.value,
                batch_size=self.batch.value,
                patience=0,
                quiet=True,
                on_epoch=on_epoch,
                diagnostics=self.DIAGNOSTICS_PER_EPOCH,
                weighting=self._strategy(),
                tasks=tasks if rec else None,
            )
            scores = (
                {f"test {k}": v for k, v in out["test"]["rec"].items() if k.endswith("@40")}
                if rec
                else {
                    f"test {m.upper() if m == 'auc' else m} {t}": metrics[m]
                    for t, metrics in out["test"].items()
                    for m in [main_metric_of(metrics)]
                }
            )
            self.results.append(
                {
                    "run": len(self.results) + 1,
                    "dataset": self.dataset.value,
                    "model": self.model.value,
                    "weighting": self.weighting.value,
                    "lr": self.lr.value,
                    "epochs": out["epochs"],
                    "batch": self.batch.value,
                    **scores,
                    "params": out["trainable_params"],
                    "seconds": round(out["seconds"], 1),
                }
            )
            self.table.value = pd.DataFrame(self.results).to_html(index=False, float_format=lambda v: f"{v:.4f}")
            self.status.value = "stopped" if self._stop.is_set() else f"done in {out['seconds']:.1f} s"
            self.last = out
            self.save_button.disabled = False
            return out
        except Exception as err:  # shown in the panel: a thread has nowhere else to report to
            self.status.value = f"error: {err}"
            if not self._thread or threading.current_thread() is not self._thread:
                raise
            return None
        finally:
            self.run_button.disabled, self.stop_button.disabled = False, True

    def save(self, path=None, rows: int = 5):
        """Use the model: write the latest run's model (its reported, best-epoch weights) to `path`
        (default: the model file box, else runs/models/<dataset>-<model>.safetensors), load it back as
        `mtlab predict` would, and show its predictions of `rows` test rows beside the command that
        predicts a file of new rows. Returns (the path, those predictions)."""
        from html import escape
        from pathlib import Path

        from .train.saved import load_model

        if self.last is None:
            raise ValueError("train a model first (Run), then save it")
        run = self.last
        path = Path(path or self.model_file.value or f"runs/models/{run['dataset']}-{run['model']}.safetensors")
        run.save(path)
        saved = load_model(path)
        data = run.data
        if saved.recommender:
            users = pd.DataFrame({"user": list(data.user_ids[:rows])})
            preview = saved.predict(users, top_k=3)
            how = f"python -m mtlab predict --model {path} --input users.csv --out top.csv --top-k 10"
        else:
            split = data.test
            batch = split.rows(torch.arange(min(rows, len(split))))[0] if not split.streamed else None
            if batch is None:
                batch = next(iter(split.batches(rows, shuffle=False)))[0]
            preview = saved.table(saved.predict_batch(batch).numpy())
            how = f"python -m mtlab predict --model {path} --input new_rows.csv --out predictions.csv"
        self.use.value = (
            f"<p>Saved to <code>{escape(str(path))}</code>. New rows (a CSV or Parquet file with the training "
            f"file's columns): <code>{escape(how)}</code>; in Python: <code>mtlab.load_model(path).predict(frame)"
            f"</code>. The saved model's predictions of {len(preview)} test rows:</p>"
            + preview.to_html(index=False, float_format=lambda v: f"{v:.4f}")
        )
        return path, preview

    def _save_clicked(self):
        try:
            path, _ = self.save()
            self.status.value = f"saved {path}"
        except Exception as err:  # shown in the panel: a button callback has nowhere else to report to
            self.status.value = f"error: {err}"

    def _ipython_display_(self):
        display(self.widget)


def _curve_figure(history: list[dict], tasks):
    """Drawn on a bare Figure, not through pyplot: pyplot is not thread-safe. Four panels: training
    loss, validation metric, gradient cosine per task pair (with the share of conflicting steps in
    the legend), and the strategy's mean weight per task."""
    frame = pd.DataFrame(history)
    fig = Figure(figsize=(12, 3.2))
    loss_ax, metric_ax, cos_ax, weight_ax = fig.subplots(1, 4)
    loss_ax.plot(frame["epoch"], frame["train_loss"], marker="o")
    loss_ax.set_title("training loss"), loss_ax.set_xlabel("epoch")
    if "valid_ndcg@40_rec" in frame:  # a recommender: the ranking curve
        for metric in ("ndcg@40", "recall@40"):
            metric_ax.plot(frame["epoch"], frame[f"valid_{metric}_rec"], marker="o", label=metric)
        metric_ax.set_title("validation ranking (rec)")
    else:  # each task's AUC, or where kinds are mixed its score (AUC, R², accuracy: one scale)
        metric = "auc" if all(f"valid_auc_{t}" in frame for t in tasks) else "score"
        for task in tasks:
            metric_ax.plot(frame["epoch"], frame[f"valid_{metric}_{task}"], marker="o", label=task)
        metric_ax.set_title("validation AUC" if metric == "auc" else "validation score (AUC, R², accuracy)")
    metric_ax.set_xlabel("epoch"), metric_ax.legend(fontsize=7)
    pairs = [c[4:] for c in frame.columns if c.startswith("cos_") and "|" in c]
    for pair in pairs:
        conflict = frame[f"conflict_{pair}"].mean()
        cos_ax.plot(frame["epoch"], frame[f"cos_{pair}"], marker="o", label=f"{pair} ({conflict:.0%} in conflict)")
    cos_ax.axhline(0, color="grey", lw=0.8)
    cos_ax.set_title("gradient cosine (shared)" if pairs else "gradient cosine: nothing shared")
    cos_ax.set_xlabel("epoch")
    if pairs:
        cos_ax.legend(fontsize=7)
    weights = [c for c in frame.columns if c.startswith("weight_")]
    for column in weights:
        if frame[column].notna().any():
            weight_ax.plot(frame["epoch"], frame[column], marker="o", label=column[7:])
    weight_ax.set_title("task weights (mean per epoch)"), weight_ax.set_xlabel("epoch")
    if weight_ax.lines:
        weight_ax.legend(fontsize=7)
    else:
        weight_ax.text(
            0.5, 0.5, "this strategy reports no weights", ha="center", va="center", transform=weight_ax.transAxes
        )
    fig.tight_layout()
    return fig


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    return buffer.getvalue()
