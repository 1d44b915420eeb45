// Actions on the selection: any action of the catalogue with its fields (drawn from the
// action's JSON schema), a dry run, then "Perform actions" guarded by the count the user saw.
import { ApiError, post } from "./api.js";
import { chips, confirmDialog, field, fmt, h, select, uid } from "./dom.js";
import { pickers, stageName } from "./pickers.js";

const title = (type) => type.charAt(0).toUpperCase() + type.slice(1).replaceAll("_", " ");

function resolve(schema, prop) {
  let s = prop;
  if (s.anyOf) s = s.anyOf.find((x) => x.type !== "null") || s.anyOf[0];
  if (s.$ref) s = schema.$defs[s.$ref.split("/").pop()];
  return s;
}

export class ActionsPanel {
  constructor(el, catalog, { getSpec, seen, onErrors, onJob }) {
    this.el = el;
    this.catalog = catalog;
    this.getSpec = getSpec;
    this.seen = seen;
    this.onErrors = onErrors;
    this.onJob = onJob;
    this.actions = [];
    this.list = h("div", { class: "actions-list" });
    this.result = h("div", { class: "dry-run", id: "dry-run-result", role: "status" });
    this.error = h("p", { class: "error", id: "actions-error", role: "alert" });
    const types = Object.keys(catalog.actions);
    // A choice, then a button: a keyboard user's type-ahead in the list adds nothing.
    this.picker = select([["", "Choose an action…"], ...types.map((t) => [t, title(t)])], "", { id: "add-action", "aria-label": "Action to add" });
    this.adder = h(
      "button",
      {
        type: "button",
        id: "add-action-button",
        onclick: () => {
          if (!this.picker.value) return this.picker.focus();
          this.add(this.picker.value);
          this.picker.value = "";
        },
      },
      "Add",
    );
    this.runAt = h("input", { id: "run-at", type: "datetime-local" });
    this.name = h("input", { id: "job-name", placeholder: "e.g. Black Friday tagging" });
    this.dryButton = h("button", { type: "button", id: "dry-run", onclick: () => this.dryRun() }, "Dry run");
    this.goButton = h("button", { type: "button", id: "perform", class: "primary", onclick: () => this.perform() }, "Perform actions");
    el.append(
      h("h2", {}, "Actions"),
      this.list,
      h("div", { class: "add-action" }, this.picker, this.adder),
      h("details", { class: "more" }, h("summary", {}, "Name and schedule"), field("Job name", this.name), field("Run at (UTC, blank: now)", this.runAt)),
      h("div", { class: "buttons" }, this.dryButton, this.goButton),
      this.error,
      this.result,
    );
    this.draw();
  }

  add(type) {
    const schema = this.catalog.actions[type];
    const params = {};
    for (const [name, prop] of Object.entries(schema.properties)) {
      if (name === "type") continue;
      const s = resolve(schema, prop);
      if (prop.default !== undefined && prop.default !== null) params[name] = prop.default;
      else if (s.type === "array") params[name] = [];
      else if (s.type === "boolean") params[name] = false;
      else params[name] = "";
    }
    this.actions.push({ id: uid("act"), type, params });
    this.draw();
    const rows = this.list.querySelectorAll(".action");
    rows[rows.length - 1]?.querySelector("input, select")?.focus();
    this.changed();
  }

  changed() {
    this.result.replaceChildren();
    this.error.textContent = "";
  }

  draw() {
    this.list.replaceChildren(
      ...(this.actions.length ? [] : [h("p", { class: "hint" }, "No actions yet: add one below.")]),
      ...this.actions.map((a, i) =>
        h(
          "div",
          { class: "action row", "data-row": a.id },
          h(
            "div",
            { class: "action-head" },
            h("strong", {}, `${i + 1}. ${title(a.type)}`),
            h(
              "button",
              {
                type: "button",
                class: "icon remove",
                "aria-label": `Remove action ${i + 1} (${title(a.type)})`,
                onclick: () => {
                  this.actions.splice(i, 1);
                  this.draw();
                  this.changed();
                },
              },
              "✕",
            ),
          ),
          h("div", { class: "action-fields" }, this.fields(a, i)),
          h("p", { class: "row-error", role: "status" }),
        ),
      ),
    );
  }

  fields(a, i) {
    const schema = this.catalog.actions[a.type];
    const out = [];
    const set = (name, value) => {
      a.params[name] = value;
      this.changed();
    };
    for (const [name, prop] of Object.entries(schema.properties)) {
      if (name === "type") continue;
      const s = resolve(schema, prop);
      const id = `${a.id}-${name}`;
      const label = `Action ${i + 1}: ${name.replaceAll("_", " ")}`;
      let control;
      if (name === "rule") {
        control = h("select", { id, onchange: (e) => set(name, e.target.value) }, h("option", { value: "" }, "choose a rule…"));
        pickers.rules().then((rules) => {
          control.append(...rules.map((r) => h("option", { value: String(r.id) }, r.name)));
          control.value = String(a.params[name] ?? "");
        });
      } else if (name === "funnel") {
        control = h("select", { id, onchange: (e) => (set(name, e.target.value), this.draw()) }, h("option", { value: "" }, "choose a funnel…"));
        pickers.funnels().then((fs) => {
          control.append(...fs.map((f) => h("option", { value: f.name }, f.name)));
          control.value = a.params[name];
        });
      } else if (name === "stage") {
        control = h("select", { id, onchange: (e) => set(name, e.target.value) }, h("option", { value: "" }, "choose a stage…"));
        pickers.funnels().then((fs) => {
          const f = fs.find((x) => x.name === a.params.funnel);
          control.append(...(f ? f.stages : []).map((st) => h("option", { value: stageName(st) }, stageName(st))));
          control.value = a.params[name];
        });
      } else if (s.type === "array") {
        out.push(
          h(
            "div",
            { class: "field" },
            h("span", { class: "label" }, name),
            chips({ id, label, values: a.params[name], onChange: (v) => set(name, v), suggest: name === "tags" ? pickers.tags : null }),
          ),
        );
        continue;
      } else if (s.type === "boolean") {
        out.push(
          h(
            "label",
            { class: "check", for: id },
            h("input", { id, type: "checkbox", checked: a.params[name], onchange: (e) => set(name, e.target.checked) }),
            name.replaceAll("_", " "),
          ),
        );
        continue;
      } else if (s.enum) {
        control = select(s.enum, a.params[name] || s.enum[0], { id, onchange: (e) => set(name, e.target.value) });
        if (!a.params[name]) a.params[name] = s.enum[0];
      } else if (s.type === "integer" || s.type === "number") {
        control = h("input", { id, type: "number", value: a.params[name], min: s.minimum, max: s.maximum, oninput: (e) => set(name, e.target.value) });
      } else {
        const suggest = { group: pickers.groups, owner: pickers.owners }[name];
        const listId = suggest ? `${id}-list` : null;
        control = h("input", { id, value: a.params[name], list: listId, autocomplete: "off", oninput: (e) => set(name, e.target.value) });
        if (suggest) {
          const dl = h("datalist", { id: listId });
          suggest("").then((items) => dl.replaceChildren(...items.map((x) => h("option", { value: x.value }, x.hint || ""))), () => {});
          out.push(h("div", { class: "field" }, h("label", { for: id }, name.replaceAll("_", " ")), control, dl));
          continue;
        }
      }
      control.setAttribute("aria-label", label);
      out.push(field(name.replaceAll("_", " "), control));
    }
    if (!out.length) out.push(h("p", { class: "hint" }, "No settings."));
    return out;
  }

  // The action list as the API takes it: numbers as numbers, blanks left out.
  body() {
    return this.actions.map((a) => {
      const schema = this.catalog.actions[a.type];
      const out = { type: a.type };
      for (const [name, value] of Object.entries(a.params)) {
        const s = resolve(schema, schema.properties[name]);
        if ((value === "" || value == null) && !(schema.required || []).includes(name)) continue;
        out[name] = (s.type === "integer" || s.type === "number") && value !== "" && !Number.isNaN(Number(value)) ? Number(value) : value;
      }
      return out;
    });
  }

  showError(error) {
    this.error.textContent = error.message;
    const byRow = new Map();
    const rest = [];
    for (const d of error.details || []) {
      const m = /^actions\[(\d+)\]/.exec(d.path || "");
      if (m && this.actions[Number(m[1])]) {
        const id = this.actions[Number(m[1])].id;
        byRow.set(id, [...(byRow.get(id) || []), `${d.path.slice(m[0].length).replace(/^\./, "") || "action"}: ${d.message}`]);
      } else rest.push(d);
    }
    for (const el of this.list.querySelectorAll("[data-row]")) {
      const messages = byRow.get(el.dataset.row) || [];
      el.classList.toggle("invalid", messages.length > 0);
      el.querySelector(".row-error").textContent = messages.join(" · ");
    }
    if (rest.length) this.onErrors({ ...error, details: rest }, "selection.");
  }

  async dryRun() {
    this.changed();
    if (!this.actions.length) return (this.error.textContent = "Add an action first.");
    this.dryButton.disabled = true;
    try {
      const answer = await post("/v1/jobs/dry-run", { selection: this.getSpec(), actions: this.body() });
      this.result.replaceChildren(
        h("p", {}, "Dry run on ", h("strong", { id: "dry-run-total" }, fmt(answer.total)), " contacts: nothing was changed."),
        h(
          "table",
          { class: "compact" },
          h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Action"), h("th", { scope: "col" }, "Would change"))),
          h(
            "tbody",
            {},
            answer.actions.map((x, i) => h("tr", {}, h("td", {}, `${i + 1}. ${title(x.type)}`), h("td", { class: "num", "data-affected": x.affected }, fmt(x.affected)))),
          ),
        ),
      );
    } catch (error) {
      this.showError(error);
    } finally {
      this.dryButton.disabled = false;
    }
  }

  async perform() {
    this.changed();
    if (!this.actions.length) return (this.error.textContent = "Add an action first.");
    const spec = this.getSpec();
    const seen = this.seen();
    if (!seen || seen.key !== JSON.stringify(spec)) {
      this.error.textContent = "Wait for the count of this selection first: the job is guarded by it.";
      return;
    }
    const n = seen.total;
    const ok = await confirmDialog(
      `Apply ${this.actions.length} action${this.actions.length === 1 ? "" : "s"} to ${fmt(n)} contacts?`,
      [
        h("ol", {}, this.body().map((a) => h("li", {}, title(a.type), " ", h("code", {}, JSON.stringify({ ...a, type: undefined }))))),
        h("p", {}, this.runAt.value ? `Scheduled for ${this.runAt.value} UTC. ` : "", "If the selection no longer counts ", h("strong", {}, fmt(n)), " contacts, nothing is done."),
      ],
      `Apply to ${fmt(n)} contacts`,
    );
    if (!ok) return;
    const body = { selection: spec, actions: this.body(), expected_total: n };
    if (this.runAt.value) body.run_at = `${this.runAt.value}:00Z`;
    if (this.name.value.trim()) body.name = this.name.value.trim();
    this.goButton.disabled = true;
    try {
      const job = await post("/v1/jobs", body);
      this.result.replaceChildren(h("p", {}, `Job #${job.id} submitted.`));
      this.onJob(job, this.result);
    } catch (error) {
      if (error instanceof ApiError && error.status === 409) this.error.textContent = `${error.message} Count again and check before applying.`;
      else this.showError(error);
    } finally {
      this.goButton.disabled = false;
    }
  }
}
