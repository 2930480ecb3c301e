"""Interactive panels for JupyterLab (ipywidgets). Notebooks place them; the core never imports
this module."""

from __future__ import annotations

import ipywidgets as w
import matplotlib.pyplot as plt
from IPython.display import display

from .data import MultiTaskData
from .experiments import compare_models, get_profile, summary_table
from .plots import learning_curves


class QuickstartPanel:
    """Sliders for learning rate, hidden size and epochs, and a Run button that retrains the models
    on a subsample of `data` (at most `max_rows` training rows, so a run takes seconds) and redraws
    the learning curves and the AUC table."""

    def __init__(self, data: MultiTaskData, models=("single_task", "shared_bottom"), device: str = "auto",
                 seed: int = 0, max_rows: int = 10_000):
        self.data = data.subsample(min(1.0, max_rows / len(data.train)), seed)
        self.models = tuple(models)
        self.profile = get_profile("quick", seeds=[seed], device=device)
        self.lr = w.FloatLogSlider(value=1e-3, base=10, min=-4, max=-1, step=0.25, description="learning rate",
                                   continuous_update=False, style={"description_width": "initial"})
        self.hidden = w.IntSlider(value=128, min=16, max=512, step=16, description="hidden size",
                                  continuous_update=False, style={"description_width": "initial"})
        self.epochs = w.IntSlider(value=self.profile.epochs, min=1, max=20, description="epochs",
                                  continuous_update=False, style={"description_width": "initial"})
        self.button = w.Button(description="Run", button_style="primary", icon="play")
        self.status = w.Label()
        self.output = w.Output()
        self.button.on_click(lambda _: self.run())
        self.widget = w.VBox([w.HBox([self.lr, self.hidden, self.epochs]), w.HBox([self.button, self.status]),
                              self.output])
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
            results, histories = compare_models(self.data, self.models, self.profile, self.model_options(),
                                                 lr=self.lr.value, epochs=self.epochs.value, patience=0,
                                                 quiet=True)
            self.last_table = summary_table(results)
            self.runs += 1
            with self.output:
                self.output.clear_output(wait=True)
                fig = learning_curves(histories, self.data.tasks)
                plt.show(fig)
                display(self.last_table)
            self.status.value = (f"run {self.runs}: lr={self.lr.value:.0e}, hidden={self.hidden.value}, "
                                 f"epochs={self.epochs.value}")
        finally:
            self.button.disabled = False
        return self.last_table

    def _ipython_display_(self):
        display(self.widget)


NEW_TASK_CHOICES = ("education", "sex", "race=White", "citizenship=Native- Born in the United States",
                    "full_or_part_time_employment_stat=Children or Armed Forces")


class NewTaskPanel:
    """Pick the new task T3, the adversarial weight β_cls of MPT-Rec pre-training and the prompt
    temperature T, press Run: `experiment(new_task, beta_cls, temperature)` retrains on a small
    subsample (one seed) and returns (table, figure), which are shown."""

    def __init__(self, experiment, new_task: str = "education", beta_cls: float = 0.1, temperature: float = 150.0):
        self.experiment = experiment
        style = {"description_width": "initial"}
        self.new_task = w.Dropdown(options=NEW_TASK_CHOICES, value=new_task, description="new task T3", style=style)
        self.beta_cls = w.FloatSlider(value=beta_cls, min=0.0, max=1.0, step=0.05, description="adversarial weight β",
                                      continuous_update=False, style=style)
        self.temperature = w.FloatLogSlider(value=temperature, base=10, min=0, max=3, step=0.1,
                                            description="prompt temperature T", continuous_update=False, style=style)
        self.button = w.Button(description="Run", button_style="primary", icon="play")
        self.status, self.output = w.Label(), w.Output()
        self.button.on_click(lambda _: self.run())
        self.widget = w.VBox([w.HBox([self.new_task, self.beta_cls, self.temperature]),
                              w.HBox([self.button, self.status]), self.output])
        self.runs, self.last_table = 0, None

    def run(self):
        self.button.disabled = True
        self.status.value = f"training with T3 = {self.new_task.value} …"
        try:
            table, fig = self.experiment(self.new_task.value, self.beta_cls.value, self.temperature.value)
            self.runs, self.last_table = self.runs + 1, table
            with self.output:
                self.output.clear_output(wait=True)
                plt.show(fig)
                display(table)
            self.status.value = (f"run {self.runs}: T3 = {self.new_task.value}, β = {self.beta_cls.value:.2f}, "
                                 f"T = {self.temperature.value:.0f}")
        finally:
            self.button.disabled = False
        return table

    def _ipython_display_(self):
        display(self.widget)


def _small_profile(device: str):
    return get_profile("quick", seeds=[0], device=device, subsample=0.05)


def negative_transfer_panel(device: str = "auto", models=("shared_bottom", "mmoe", "mpt_rec")) -> NewTaskPanel:
    from .experiments.new_task import negative_transfer, summarize_negative_transfer
    from .plots import negative_transfer_bars

    def experiment(new_task, beta_cls, temperature):
        runs, _ = negative_transfer(_small_profile(device), [new_task], models, {"mpt_rec": {"beta_cls": beta_cls}})
        return summarize_negative_transfer(runs), negative_transfer_bars(runs)

    return NewTaskPanel(experiment)


def prompt_tuning_panel(device: str = "auto") -> NewTaskPanel:
    from .experiments.new_task import load_new_task_data, new_task_table, summarize_new_task
    from .plots import metric_bars

    def experiment(new_task, beta_cls, temperature):
        profile = _small_profile(device)
        table = new_task_table(load_new_task_data(new_task, profile), profile, ["shared_bottom", "mpt_rec"],
                               include_maml=False, model_options={"mpt_rec": {"beta_cls": beta_cls}},
                               head_options={"mpt_rec": {"temperature": temperature}})
        bars = table.assign(task=new_task, auc=table["t3_auc"])
        return summarize_new_task(table), metric_bars(bars, title="T3 test AUC after fine-tuning")

    return NewTaskPanel(experiment)


def ablation_panel(device: str = "auto") -> NewTaskPanel:
    from .experiments.ablations import prompt_ablations
    from .experiments.new_task import load_new_task_data
    from .plots import ablation_bars

    def experiment(new_task, beta_cls, temperature):
        profile = _small_profile(device)
        table = prompt_ablations(load_new_task_data(new_task, profile), profile, beta_cls, temperature)
        return table, ablation_bars(table)

    return NewTaskPanel(experiment)


def tsne_panel(device: str = "auto") -> NewTaskPanel:
    from .experiments.ablations import tsne_study
    from .experiments.new_task import load_new_task_data
    from .plots import tsne_panels

    def experiment(new_task, beta_cls, temperature):
        profile = _small_profile(device)
        data3 = load_new_task_data(new_task, profile)
        points, scores = tsne_study(data3.select_tasks(data3.tasks[:2]), profile, ("mpt_rec",), n=400,
                                    model_options={"mpt_rec": {"beta_cls": beta_cls}})
        return scores, tsne_panels(points, scores)

    return NewTaskPanel(experiment)
