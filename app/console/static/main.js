// The console's shell: the key, the tabs, and the Audience panel that ties the selection
// builder to its count, preview, export and actions.
import { ActionsPanel } from "./actions.js";
import { get, key, post, put } from "./api.js";
import { Composer, fromSpec, toSpec } from "./compose.js";
import { h } from "./dom.js";
import { ImportPanel } from "./importer.js";
import { JobCard, JobsPanel } from "./jobs.js";
import { pickers, refresh } from "./pickers.js";
import { Counter, Preview, exportCard } from "./results.js";

const $ = (id) => document.getElementById(id);
let started = false;

async function boot() {
  $("login-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    key.set($("key-input").value.trim());
    await start();
  });
  $("sign-out").addEventListener("click", () => {
    key.clear();
    location.reload();
  });
  window.addEventListener("audience:unauthorized", () => {
    key.clear();
    for (const id of ["panel-compose", "panel-jobs", "panel-import"]) $(id).hidden = true;
    document.querySelector(".tabs").hidden = true;
    document.querySelector(".who").hidden = true;
    $("login").hidden = false;
    $("login-error").textContent = "This key is no longer accepted: enter a valid one.";
    $("key-input").value = "";
    $("key-input").focus();
  });
  if (key.get()) await start();
}

async function start() {
  let me;
  try {
    me = await get("/console/me");
  } catch (error) {
    key.clear();
    $("login-error").textContent = error.status === 401 ? "That key is not valid." : error.message;
    return;
  }
  if (started) {
    // signed in again after a revoked key: the panels exist, show them
    location.reload();
    return;
  }
  started = true;
  const catalog = await (await fetch("/console/catalog.json")).json();
  document.body.dataset.scope = me.scope;
  $("login").hidden = true;
  document.querySelector(".tabs").hidden = false;
  document.querySelector(".who").hidden = false;
  $("who-label").textContent = `${me.label} · ${me.scope === "read" ? "read-only key" : "full key"}`;
  const jobs = new JobsPanel($("panel-jobs"));
  audience($("panel-compose"), catalog, jobs);
  if (me.scope !== "read") new ImportPanel($("panel-import"), { onJob: () => jobs.load() });
  tabs(jobs);
}

function tabs(jobs) {
  const all = [...document.querySelectorAll('[role="tab"]')].filter((t) => getComputedStyle(t).display !== "none");
  const show = (tab) => {
    for (const t of all) {
      const on = t === tab;
      t.setAttribute("aria-selected", String(on));
      t.tabIndex = on ? 0 : -1;
      $(t.getAttribute("aria-controls")).hidden = !on;
    }
    if (tab.id === "tab-jobs") jobs.load();
  };
  all.forEach((t, i) => {
    t.addEventListener("click", () => show(t));
    t.addEventListener("keydown", (e) => {
      const step = { ArrowRight: 1, ArrowLeft: -1 }[e.key];
      if (!step) return;
      const next = all[(i + step + all.length) % all.length];
      next.focus();
      show(next);
    });
  });
  show(all[0]);
}

function audience(panel, catalog, jobs) {
  const builderRoot = h("div", { id: "builder" });
  const problems = h("div", { class: "error", id: "selection-error", role: "alert" });
  const json = h("textarea", { id: "spec-json", rows: 10, spellcheck: "false", "aria-label": "Selection spec as JSON" });
  const jsonError = h("p", { class: "error", role: "alert" });
  let composer;
  let paths = [];
  const spec = () => {
    const made = toSpec(catalog, composer.model);
    paths = made.paths;
    return made.spec;
  };

  // A 422's details, each shown at the row its path names (the longest path it starts with).
  const showErrors = (error, prefix = "") => {
    const byRow = new Map();
    const loose = [];
    for (const d of error.details || []) {
      const path = d.path && d.path.startsWith(prefix) ? d.path.slice(prefix.length) : d.path || "";
      const hit = paths
        .filter(([p]) => path === p || path.startsWith(`${p}.`) || path.startsWith(`${p}[`))
        .sort((a, b) => b[0].length - a[0].length)[0];
      const rest = hit ? path.slice(hit[0].length).replace(/^\./, "") : "";
      if (hit) byRow.set(hit[1], [...(byRow.get(hit[1]) || []), rest ? `${rest}: ${d.message}` : d.message]);
      else loose.push(d.path ? `${d.path}: ${d.message}` : d.message);
    }
    composer.showErrors(byRow);
    problems.textContent = loose.join(" · ");
  };
  const clearErrors = () => {
    composer.showErrors(new Map());
    problems.textContent = "";
  };

  const countCard = h("section", { class: "card count-card", "aria-labelledby": "count-title" });
  const previewCard = h("section", { class: "card preview-card" });
  const counter = new Counter(countCard, {
    onResult: () => {
      clearErrors();
      if (previewCard.dataset.loaded) preview.reset();
    },
    onError: (error) => showErrors(error),
  });
  const preview = new Preview(previewCard, catalog, spec, showErrors);
  const onChange = () => {
    const s = spec();
    if (document.activeElement !== json) json.value = JSON.stringify(s, null, 2);
    counter.schedule(s);
  };
  composer = new Composer(builderRoot, catalog, onChange);

  // Saved segments: load one into the form, or save the form as one.
  const segmentSelect = h("select", { id: "segment-load", "aria-label": "Saved segment" });
  const segmentName = h("input", { id: "segment-name", placeholder: "segment name", "aria-label": "Save as segment named" });
  const segmentStatus = h("span", { class: "hint", role: "status" });
  const fillSegments = async () => {
    const list = await pickers.segmentList().catch(() => []);
    segmentSelect.replaceChildren(h("option", { value: "" }, list.length ? "Load a saved segment…" : "No saved segments"), ...list.map((s) => h("option", { value: String(s.id) }, s.name)));
    return list;
  };
  segmentSelect.addEventListener("change", async () => {
    if (!segmentSelect.value) return;
    const segment = await get(`/v1/segments/${segmentSelect.value}`);
    composer.load(fromSpec(catalog, segment.selection));
    segmentName.value = segment.name;
    segmentStatus.textContent = `Loaded “${segment.name}”.`;
  });
  const save = h(
    "button",
    {
      type: "button",
      id: "segment-save",
      class: "needs-full",
      onclick: async () => {
        const name = segmentName.value.trim();
        if (!name) return (segmentStatus.textContent = "Name the segment first.");
        try {
          const list = await pickers.segmentList();
          const same = list.find((s) => s.name.toLowerCase() === name.toLowerCase());
          if (same) await put(`/v1/segments/${same.id}`, { name, selection: spec() });
          else await post("/v1/segments", { name, selection: spec() });
          refresh();
          await fillSegments();
          segmentStatus.textContent = `Saved “${name}”.`;
        } catch (error) {
          segmentStatus.textContent = error.message;
          showErrors(error, "selection.");
        }
      },
    },
    "Save segment",
  );
  fillSegments();

  const applyJson = h(
    "button",
    {
      type: "button",
      id: "spec-apply",
      onclick: () => {
        try {
          composer.load(fromSpec(catalog, JSON.parse(json.value)));
          jsonError.textContent = "";
        } catch (error) {
          jsonError.textContent = `Not applied: ${error.message}`;
        }
      },
    },
    "Apply JSON",
  );

  const actionsCard = h("section", { class: "card actions-card needs-full" });
  new ActionsPanel(actionsCard, catalog, {
    getSpec: spec,
    seen: () => counter.seen,
    onErrors: showErrors,
    onJob: (job, where) => {
      where.append(new JobCard(job).el);
      counter.run(spec());
    },
  });
  const exportEl = h("section", { class: "card export-card" });
  exportCard(exportEl, spec, showErrors);
  const previewButton = h(
    "button",
    {
      type: "button",
      id: "preview-show",
      onclick: () => {
        previewCard.dataset.loaded = "1";
        previewCard.hidden = false;
        preview.reset();
      },
    },
    "Show preview",
  );
  previewCard.hidden = true;

  panel.append(
    h(
      "div",
      { class: "layout" },
      h(
        "section",
        { class: "card builder", "aria-labelledby": "builder-title" },
        h("div", { class: "card-head" }, h("h2", { id: "builder-title" }, "Selection"), h("div", { class: "tools segments" }, segmentSelect, segmentName, save, segmentStatus)),
        builderRoot,
        problems,
        h("details", { class: "json" }, h("summary", {}, "Selection as JSON"), json, h("div", { class: "buttons" }, applyJson), jsonError),
      ),
      h("aside", { class: "side" }, countCard, h("div", { class: "buttons" }, previewButton), actionsCard, exportEl),
    ),
    previewCard,
  );
  composer.render();
  onChange();
}

boot();
