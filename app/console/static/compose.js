// The selection builder: include and exclude selectors, a tree of filter rows in nested
// and/or/not groups, the spec as JSON both ways. The form keeps a model; toSpec() turns it
// into the selection spec and records which row each spec path came from, so that a 422's
// details[].path is shown at its row.
import { chips, field, h, select, uid } from "./dom.js";
import { pickers, stageHint, stageName } from "./pickers.js";

const SELECTOR_TYPES = [
  ["tag", "Tags"],
  ["funnel", "Funnel stage"],
  ["mailing", "Mailing"],
  ["group", "Group"],
  ["segment", "Segment"],
];
const MAILING_EVENTS = ["sent", "opened", "not_opened", "clicked", "bounced"];
const OP_LABELS = {
  eq: "is",
  ne: "is not",
  in: "is one of",
  not_in: "is none of",
  is_empty: "is empty",
  is_not_empty: "is not empty",
  contains: "contains",
  not_contains: "does not contain",
  starts_with: "starts with",
  ends_with: "ends with",
  lt: "<",
  lte: "≤",
  gt: ">",
  gte: "≥",
  between: "between",
  within_last_days: "within the last … days",
  older_than_days: "older than … days",
  birthday_within_days: "birthday within … days",
};
const AGG_LABELS = { count: "count", sum: "sum of values", max: "largest value", last_at: "last time" };

export const newSelector = (type = "tag") => ({
  id: uid("sel"),
  type,
  tags: [],
  match: "any",
  funnel: "",
  stages: [],
  mailings: [],
  event: "sent",
  groups: [],
  segments: [],
});
const newGroup = (op = "and") => ({ id: uid("grp"), kind: "group", op, not: false, children: [] });
const newRow = (kind, catalog) => {
  const row = { id: uid("row"), kind, op: "", value: "", value2: "" };
  if (kind === "field") Object.assign(row, { field: catalog.fields[0].name });
  if (kind === "detail") Object.assign(row, { detail: "", as: "string" });
  if (kind === "event")
    Object.assign(row, {
      event: { type: "", within_days: "", from: "", to: "", products_contains: "", value_gte: "", value_lte: "" },
      agg: "count",
      op: "gte",
      value: "1",
    });
  if (kind === "selector") row.selector = newSelector();
  return row;
};

export function emptyModel() {
  return { include: [], exclude: [], filter: newGroup(), deleted: "exclude", as_of: "" };
}

// --- model → spec ------------------------------------------------------------------------

function selectorSpec(s) {
  switch (s.type) {
    case "tag":
      return { type: "tag", tags: [...s.tags], ...(s.match === "all" ? { match: "all" } : {}) };
    case "funnel":
      return { type: "funnel", funnel: s.funnel, ...(s.stages.length ? { stages: [...s.stages] } : {}) };
    case "mailing":
      return { type: "mailing", mailings: s.mailings.map(Number), event: s.event };
    case "group":
      return { type: "group", groups: [...s.groups] };
    case "segment":
      return { type: "segment", segments: [...s.segments] };
  }
  throw new Error(`unknown selector ${s.type}`);
}

const isoDateTime = (v) => (/^\d{4}-\d\d-\d\dT\d\d:\d\d$/.test(v) ? `${v}:00Z` : v);

function scalar(kind, raw) {
  const v = typeof raw === "string" ? raw.trim() : raw;
  if (kind === "number") return v !== "" && !Number.isNaN(Number(v)) ? Number(v) : v;
  if (kind === "bool") return v === "true" ? true : v === "false" ? false : v;
  if (kind === "datetime") return isoDateTime(v);
  return v;
}

function operand(catalog, kind, row) {
  const shape = catalog.operators[row.op];
  switch (shape) {
    case "none":
      return undefined;
    case "list":
      return String(row.value)
        .split(/[,\n]/)
        .map((v) => v.trim())
        .filter(Boolean)
        .map((v) => scalar(kind, v));
    case "pair":
      return [scalar(kind, row.value), scalar(kind, row.value2)];
    case "days":
      return /^\d+$/.test(String(row.value).trim()) ? Number(row.value) : row.value;
    case "text":
      return String(row.value);
    default:
      return scalar(kind, row.value);
  }
}

export function rowKind(catalog, row) {
  if (row.kind === "field") return catalog.fields.find((f) => f.name === row.field)?.kind || "text";
  if (row.kind === "detail") return catalog.detail_kinds[row.as];
  if (row.kind === "event") return catalog.aggregates[row.agg];
  return "text";
}

function withValue(test, catalog, row) {
  const value = operand(catalog, rowKind(catalog, row), row);
  return value === undefined ? test : { ...test, value };
}

function eventSpec(e) {
  const out = {};
  if (e.type.trim()) out.type = e.type.trim();
  for (const k of ["within_days", "value_gte", "value_lte"])
    if (String(e[k]).trim() !== "") out[k] = Number.isNaN(Number(e[k])) ? e[k] : Number(e[k]);
  for (const k of ["from", "to"]) if (e[k]) out[k] = isoDateTime(e[k]);
  if (e.products_contains.trim()) out.products_contains = e.products_contains.trim();
  return out;
}

// A row still being filled in is left out of the spec (and says so) rather than counted as
// an error: a new tag selector has no tag yet, a new field row no value.
export function selectorReady(s) {
  const names = { tag: s.tags, mailing: s.mailings, group: s.groups, segment: s.segments }[s.type];
  return names ? names.length > 0 : Boolean(s.funnel);
}

function filled(v) {
  return String(v ?? "").trim() !== "";
}

export function rowReady(catalog, row) {
  if (row.kind === "group") return row.children.some((c) => rowReady(catalog, c));
  if (row.kind === "selector") return selectorReady(row.selector);
  if (row.kind === "detail" && !filled(row.detail)) return false;
  const shape = catalog.operators[row.op];
  if (shape === "none") return true;
  if (shape === "pair") return filled(row.value) && filled(row.value2);
  return filled(row.value);
}

const isEmptyGroup = (node) => node.kind === "group" && node.children.every(isEmptyGroup);

function conditionSpec(catalog, node, path, paths) {
  paths.push([path, node.id]);
  switch (node.kind) {
    case "group": {
      const inner = node.not ? `${path}.not` : path;
      const kept = node.children.filter((c) => rowReady(catalog, c));
      const body = { [node.op]: kept.map((c, i) => conditionSpec(catalog, c, `${inner}.${node.op}[${i}]`, paths)) };
      return node.not ? { not: body } : body;
    }
    case "field":
      return withValue({ field: node.field, op: node.op }, catalog, node);
    case "detail":
      return withValue({ detail: node.detail, op: node.op, ...(node.as !== "string" ? { as: node.as } : {}) }, catalog, node);
    case "event":
      return withValue({ event: eventSpec(node.event), agg: node.agg, op: node.op }, catalog, node);
    case "selector":
      paths.push([path, node.selector.id]);
      return selectorSpec(node.selector);
  }
  throw new Error(`unknown row ${node.kind}`);
}

// The spec, and [path, row id] pairs (most specific last) for placing errors.
export function toSpec(catalog, model) {
  const paths = [];
  const spec = {};
  for (const side of ["include", "exclude"]) {
    const ready = model[side].filter(selectorReady);
    if (ready.length) spec[side] = ready.map((s, i) => (paths.push([`${side}[${i}]`, s.id]), selectorSpec(s)));
  }
  if (rowReady(catalog, model.filter)) spec.filter = conditionSpec(catalog, model.filter, "filter", paths);
  if (model.deleted !== "exclude") spec.deleted = model.deleted;
  if (model.as_of) spec.as_of = isoDateTime(model.as_of);
  return { spec, paths };
}

// --- spec → model (pasted JSON, a loaded segment) ----------------------------------------

function selectorModel(s) {
  if (!s || typeof s !== "object" || !SELECTOR_TYPES.some(([t]) => t === s.type))
    throw new Error(`not a selector: ${JSON.stringify(s)}`);
  const m = newSelector(s.type);
  Object.assign(m, {
    tags: [...(s.tags || [])],
    match: s.match || "any",
    funnel: s.funnel || "",
    stages: [...(s.stages || [])],
    mailings: (s.mailings || []).map(String),
    event: s.event || "sent",
    groups: [...(s.groups || [])],
    segments: [...(s.segments || [])],
  });
  return m;
}

const rawDateTime = (v) => (typeof v === "string" && /T\d\d:\d\d/.test(v) ? v.slice(0, 16) : v);

function rawValue(row, value) {
  if (value === undefined || value === null) return row;
  if (Array.isArray(value)) {
    if (row.op === "between") {
      row.value = String(rawDateTime(value[0]) ?? "");
      row.value2 = String(rawDateTime(value[1]) ?? "");
    } else row.value = value.join(", ");
  } else row.value = String(rawDateTime(value));
  return row;
}

function conditionModel(catalog, c) {
  if (!c || typeof c !== "object") throw new Error(`not a condition: ${JSON.stringify(c)}`);
  for (const op of ["and", "or"]) {
    if (Array.isArray(c[op])) {
      const g = newGroup(op);
      g.children = c[op].map((x) => conditionModel(catalog, x));
      return g;
    }
  }
  if (c.not !== undefined) {
    const inner = conditionModel(catalog, c.not);
    if (inner.kind === "group" && !inner.not) return { ...inner, not: true };
    const g = newGroup("and");
    g.not = true;
    g.children = [inner];
    return g;
  }
  if (c.field !== undefined) return rawValue({ ...newRow("field", catalog), field: c.field, op: c.op }, c.value);
  if (c.detail !== undefined)
    return rawValue({ ...newRow("detail", catalog), detail: c.detail, as: c.as || "string", op: c.op }, c.value);
  if (c.event !== undefined) {
    const row = newRow("event", catalog);
    for (const [k, v] of Object.entries(c.event || {})) row.event[k] = String(rawDateTime(v));
    return rawValue({ ...row, agg: c.agg, op: c.op, value: "" }, c.value);
  }
  return { ...newRow("selector", catalog), selector: selectorModel(c) };
}

export function fromSpec(catalog, spec) {
  if (!spec || typeof spec !== "object" || Array.isArray(spec)) throw new Error("a selection spec is a JSON object");
  const model = emptyModel();
  model.include = (spec.include || []).map(selectorModel);
  model.exclude = (spec.exclude || []).map(selectorModel);
  if (spec.filter) {
    const f = conditionModel(catalog, spec.filter);
    model.filter = f.kind === "group" ? f : { ...newGroup(), children: [f] };
  }
  model.deleted = spec.deleted || "exclude";
  model.as_of = rawDateTime(spec.as_of || "");
  return model;
}

// --- the form ----------------------------------------------------------------------------

const inputType = { number: "number", date: "date", datetime: "datetime-local" };

export class Composer {
  constructor(root, catalog, onChange) {
    this.root = root;
    this.catalog = catalog;
    this.onChange = onChange;
    this.model = emptyModel();
    this.errors = new Map(); // row id → messages
  }

  // Structure changed: draw again, keeping the focus on the control it was on.
  redraw() {
    const focused = document.activeElement && document.activeElement.id;
    this.render();
    const again = focused && document.getElementById(focused);
    if (again) again.focus();
    this.changed();
  }

  load(model) {
    this.model = model;
    this.errors.clear();
    this.render();
    this.changed();
  }

  showErrors(byRow) {
    this.errors = byRow;
    this.markIncomplete();
    for (const el of this.root.querySelectorAll("[data-row]")) {
      const messages = byRow.get(el.dataset.row) || [];
      el.classList.toggle("invalid", messages.length > 0);
      const slot = el.querySelector(":scope > .row-error");
      if (slot) slot.textContent = messages.join(" · ");
    }
  }

  // Rows left out of the spec until filled in get a quiet note.
  markIncomplete() {
    const all = [...this.model.include, ...this.model.exclude];
    const walk = (g) => g.children.forEach((c) => (c.kind === "group" ? walk(c) : all.push(c)));
    walk(this.model.filter);
    for (const item of all) {
      const el = document.getElementById(item.id) || this.root.querySelector(`[data-row="${item.id}"]`);
      const ready = item.kind ? rowReady(this.catalog, item) : selectorReady(item);
      if (el) el.classList.toggle("incomplete", !ready);
    }
  }

  changed() {
    this.markIncomplete();
    this.onChange();
  }

  render() {
    const m = this.model;
    this.root.replaceChildren(
      this.side("include", "Include", "Contacts matching any of these (none: every contact)."),
      this.side("exclude", "Exclude", "Minus contacts matching any of these."),
      h(
        "fieldset",
        { class: "block" },
        h("legend", {}, "Filter"),
        h("p", { class: "hint" }, "Only contacts that also pass these conditions."),
        this.group(m.filter, true),
      ),
      h(
        "div",
        { class: "inline" },
        field(
          "Deleted contacts",
          select(
            [
              ["exclude", "leave out"],
              ["only", "only deleted"],
              ["include", "include them"],
            ],
            m.deleted,
            { id: "deleted", onchange: (e) => ((m.deleted = e.target.value), this.changed()) },
          ),
        ),
        field(
          "As of (UTC, blank: now)",
          h("input", {
            id: "as-of",
            type: "datetime-local",
            value: m.as_of,
            onchange: (e) => ((m.as_of = e.target.value), this.changed()),
          }),
        ),
      ),
    );
    this.showErrors(this.errors);
  }

  side(name, title, hint) {
    const list = this.model[name];
    return h(
      "fieldset",
      { class: `block ${name}` },
      h("legend", {}, title),
      h("p", { class: "hint" }, hint),
      list.map((s, i) =>
        h(
          "div",
          { class: "row selector-row", "data-row": s.id, id: s.id },
          this.selector(s, `${title} ${i + 1}`),
          h(
            "button",
            {
              type: "button",
              class: "icon remove",
              "aria-label": `Remove ${title.toLowerCase()} selector ${i + 1}`,
              onclick: () => (list.splice(i, 1), this.redraw()),
            },
            "✕",
          ),
          h("p", { class: "row-error", role: "status" }),
        ),
      ),
      h(
        "div",
        { class: "adders" },
        SELECTOR_TYPES.map(([type, label]) =>
          h(
            "button",
            {
              type: "button",
              id: `add-${name}-${type}`,
              class: "add",
              onclick: () => {
                list.push(newSelector(type));
                this.render();
                this.focusLast(`.${name} .selector-row`);
                this.changed();
              },
            },
            `+ ${label}`,
          ),
        ),
      ),
    );
  }

  focusLast(selector) {
    const rows = this.root.querySelectorAll(selector);
    const last = rows[rows.length - 1];
    const control = last && (last.querySelector(".chips input, select[id$='-funnel'], select[id$='-mailings']") || last.querySelector("input, select"));
    if (control) control.focus();
  }

  selector(s, name) {
    const ch = () => this.changed();
    const kind = select(SELECTOR_TYPES, s.type, {
      id: `${s.id}-type`,
      "aria-label": `${name}: kind`,
      onchange: (e) => {
        s.type = e.target.value;
        this.redraw();
      },
    });
    const parts = [kind];
    switch (s.type) {
      case "tag":
        parts.push(
          select(
            [
              ["any", "any of"],
              ["all", "all of"],
            ],
            s.match,
            { id: `${s.id}-match`, "aria-label": `${name}: match`, onchange: (e) => ((s.match = e.target.value), ch()) },
          ),
          chips({ id: `${s.id}-tags`, label: `${name}: tags`, values: s.tags, onChange: ch, suggest: pickers.tags, placeholder: "tag name…" }),
        );
        break;
      case "group":
        parts.push(
          chips({ id: `${s.id}-groups`, label: `${name}: groups`, values: s.groups, onChange: ch, suggest: pickers.groups, placeholder: "group name…" }),
        );
        break;
      case "segment":
        parts.push(
          chips({ id: `${s.id}-segments`, label: `${name}: segments`, values: s.segments, onChange: ch, suggest: pickers.segments, placeholder: "segment name…" }),
        );
        break;
      case "funnel":
        parts.push(this.funnelPicker(s, name));
        break;
      case "mailing":
        parts.push(this.mailingPicker(s, name));
        break;
    }
    return h("div", { class: "selector" }, parts);
  }

  funnelPicker(s, name) {
    const funnelSelect = h("select", { id: `${s.id}-funnel`, "aria-label": `${name}: funnel` }, h("option", { value: "" }, "choose a funnel…"));
    const stages = h("span", { class: "stages", role: "group", "aria-label": `${name}: stages (none: any stage)` });
    const drawStages = (funnels) => {
      const f = funnels.find((x) => x.name.toLowerCase() === s.funnel.toLowerCase());
      stages.replaceChildren(
        ...(f ? f.stages : []).map((stage) => {
          const n = stageName(stage);
          const id = `${s.id}-stage-${n.replace(/\W/g, "_")}`;
          return h(
            "label",
            { class: "check", for: id },
            h("input", {
              id,
              type: "checkbox",
              checked: s.stages.some((x) => x.toLowerCase() === n.toLowerCase()),
              onchange: (e) => {
                s.stages = e.target.checked ? [...s.stages, n] : s.stages.filter((x) => x.toLowerCase() !== n.toLowerCase());
                this.changed();
              },
            }),
            `${n}${f.contacts && f.contacts[n] != null ? ` (${f.contacts[n]})` : stageHint(stage)}`,
          );
        }),
      );
    };
    pickers.funnels().then((funnels) => {
      funnelSelect.append(...funnels.map((f) => h("option", { value: f.name }, f.name)));
      if (s.funnel && !funnels.some((f) => f.name === s.funnel)) funnelSelect.append(h("option", { value: s.funnel }, s.funnel));
      funnelSelect.value = s.funnel;
      drawStages(funnels);
      funnelSelect.addEventListener("change", () => {
        s.funnel = funnelSelect.value;
        s.stages = [];
        drawStages(funnels);
        this.changed();
      });
    });
    return h("span", { class: "funnel" }, funnelSelect, stages);
  }

  mailingPicker(s, name) {
    const mailings = h("select", { id: `${s.id}-mailings`, multiple: true, size: 3, "aria-label": `${name}: mailings` });
    pickers.mailings().then((list) => {
      mailings.append(
        ...list.map((m) =>
          h("option", { value: String(m.id), selected: s.mailings.includes(String(m.id)) }, `${m.name} (${(m.sent_at || "").slice(0, 10)})`),
        ),
      );
    });
    mailings.addEventListener("change", () => {
      s.mailings = [...mailings.selectedOptions].map((o) => o.value);
      this.changed();
    });
    const event = select(MAILING_EVENTS.map((e) => [e, e.replace("_", " ")]), s.event, {
      id: `${s.id}-event`,
      "aria-label": `${name}: event`,
      onchange: (e) => ((s.event = e.target.value), this.changed()),
    });
    return h("span", { class: "mailing" }, mailings, event);
  }

  group(g, root = false, label = "Filter") {
    const ops = [
      ["and", "all of"],
      ["or", "any of"],
    ];
    const header = h(
      "div",
      { class: "group-head" },
      h(
        "label",
        { class: "check", for: `${g.id}-not` },
        h("input", { id: `${g.id}-not`, type: "checkbox", checked: g.not, onchange: (e) => ((g.not = e.target.checked), this.changed()) }),
        "not",
      ),
      select(ops, g.op, {
        id: `${g.id}-op`,
        "aria-label": `${label}: combine with`,
        onchange: (e) => ((g.op = e.target.value), this.changed()),
      }),
      h("span", { class: "hint" }, "these conditions"),
      root
        ? null
        : h("button", { type: "button", class: "icon remove", "aria-label": `Remove ${label}`, onclick: () => this.removeNode(g) }, "✕"),
    );
    const kinds = [
      ["field", "+ Field"],
      ["detail", "+ Detail"],
      ["event", "+ Event"],
      ["selector", "+ Tag/group/…"],
      ["group", "+ Group"],
    ];
    return h(
      "div",
      { class: `group ${root ? "root" : ""} ${g.not ? "negated" : ""}`, "data-row": g.id, id: g.id },
      header,
      h("p", { class: "row-error", role: "status" }),
      g.children.map((c, i) => (c.kind === "group" ? this.group(c, false, `${label} group ${i + 1}`) : this.row(c, `${label} row ${i + 1}`))),
      h(
        "div",
        { class: "adders" },
        kinds.map(([kind, text]) =>
          h(
            "button",
            {
              type: "button",
              class: "add",
              id: `${g.id}-add-${kind}`,
              onclick: () => {
                g.children.push(kind === "group" ? newGroup() : newRow(kind, this.catalog));
                this.render();
                const last = g.children[g.children.length - 1];
                const el = document.getElementById(last.id);
                const control = el && (el.querySelector(".chips input, select[id$='-funnel'], select[id$='-mailings']") || el.querySelector("input, select"));
                if (control) control.focus();
                this.changed();
              },
            },
            text,
          ),
        ),
      ),
    );
  }

  removeNode(node, group = this.model.filter) {
    const i = group.children.indexOf(node);
    if (i >= 0) {
      group.children.splice(i, 1);
      this.redraw();
      return true;
    }
    return group.children.some((c) => c.kind === "group" && this.removeNode(node, c));
  }

  row(r, label) {
    const cat = this.catalog;
    const parts = [];
    if (r.kind === "field") {
      parts.push(
        select(
          cat.fields.map((f) => [f.name, f.name.replaceAll("_", " ")]),
          r.field,
          {
            id: `${r.id}-field`,
            "aria-label": `${label}: field`,
            onchange: (e) => {
              r.field = e.target.value;
              this.redraw();
            },
          },
        ),
      );
    } else if (r.kind === "detail") {
      parts.push(
        this.suggestInput(`${r.id}-detail`, `${label}: detail name`, r.detail, (v) => (r.detail = v), pickers.details, "detail name"),
        select(
          Object.keys(cat.detail_kinds).map((k) => [k, `as ${k}`]),
          r.as,
          { id: `${r.id}-as`, "aria-label": `${label}: compare as`, onchange: (e) => ((r.as = e.target.value), this.redraw()) },
        ),
      );
    } else if (r.kind === "event") {
      parts.push(this.eventEditor(r, label));
      parts.push(
        select(
          Object.keys(cat.aggregates).map((a) => [a, AGG_LABELS[a] || a]),
          r.agg,
          { id: `${r.id}-agg`, "aria-label": `${label}: aggregate`, onchange: (e) => ((r.agg = e.target.value), this.redraw()) },
        ),
      );
    } else if (r.kind === "selector") {
      parts.push(h("div", { "data-row": r.selector.id }, this.selector(r.selector, label)));
    }
    if (r.kind !== "selector") parts.push(...this.opAndValue(r, label));
    return h(
      "div",
      { class: `row cond-row cond-${r.kind}`, "data-row": r.id, id: r.id },
      h("div", { class: "cond" }, parts),
      h("button", { type: "button", class: "icon remove", "aria-label": `Remove ${label}`, onclick: () => this.removeNode(r) }, "✕"),
      h("p", { class: "row-error", role: "status" }),
    );
  }

  suggestInput(id, label, value, set, suggest, placeholder) {
    const listId = `${id}-list`;
    const list = h("datalist", { id: listId });
    const input = h("input", {
      id,
      value,
      list: listId,
      placeholder,
      autocomplete: "off",
      "aria-label": label,
      oninput: (e) => {
        set(e.target.value);
        this.changed();
        fill();
      },
      onfocus: () => fill(),
    });
    const fill = async () => {
      try {
        const items = await suggest(input.value);
        list.replaceChildren(...items.map((s) => h("option", { value: s.value }, s.hint || "")));
      } catch {
        /* a help only */
      }
    };
    return h("span", { class: "suggest" }, input, list);
  }

  eventEditor(r, label) {
    const e = r.event;
    const set = (k) => (ev) => {
      e[k] = ev.target.value;
      this.changed();
    };
    const small = (k, text, attrs) =>
      h("label", { class: "mini" }, h("span", {}, text), h("input", { id: `${r.id}-${k}`, value: e[k], oninput: set(k), ...attrs }));
    return h(
      "div",
      { class: "event" },
      this.suggestInput(`${r.id}-type`, `${label}: event type`, e.type, (v) => (e.type = v), pickers.eventTypes, "event type (any)"),
      h(
        "details",
        { class: "event-more", open: ["within_days", "from", "to", "products_contains", "value_gte", "value_lte"].some((k) => e[k]) },
        h("summary", {}, "event filters"),
        small("within_days", "within days", { type: "number", min: 0 }),
        small("from", "from", { type: "datetime-local" }),
        small("to", "to", { type: "datetime-local" }),
        small("products_contains", "products contain", {}),
        small("value_gte", "value ≥", { type: "number", step: "any" }),
        small("value_lte", "value ≤", { type: "number", step: "any" }),
      ),
    );
  }

  opAndValue(r, label) {
    const cat = this.catalog;
    const kind = rowKind(cat, r);
    const f = r.kind === "field" ? cat.fields.find((x) => x.name === r.field) : null;
    const ops = f ? f.operators : cat.kinds[kind];
    if (!ops.includes(r.op)) r.op = ops.includes(r.kind === "event" ? "gte" : "eq") ? (r.kind === "event" ? "gte" : "eq") : ops[0];
    const opSelect = select(
      ops.map((o) => [o, OP_LABELS[o] || o]),
      r.op,
      {
        id: `${r.id}-op`,
        "aria-label": `${label}: operator`,
        onchange: (e) => {
          r.op = e.target.value;
          this.redraw();
        },
      },
    );
    return [opSelect, this.valueInput(r, label, kind, f)];
  }

  valueInput(r, label, kind, f) {
    const shape = this.catalog.operators[r.op];
    const ch = (k) => (e) => {
      r[k] = e.target.value;
      this.changed();
    };
    const one = (k, aria, type = inputType[kind] || "text") => {
      if (kind === "bool")
        return select(["", "true", "false"].map((v) => [v, v || "choose…"]), r[k], { id: `${r.id}-${k}`, "aria-label": aria, onchange: ch(k) });
      if (kind === "enum" && f)
        return select([["", "choose…"], ...f.choices.map((c) => [c, c])], r[k], { id: `${r.id}-${k}`, "aria-label": aria, onchange: ch(k) });
      return h("input", { id: `${r.id}-${k}`, type, step: type === "number" ? "any" : null, value: r[k], "aria-label": aria, oninput: ch(k) });
    };
    switch (shape) {
      case "none":
        return h("span", { class: "value" });
      case "list":
        return h("input", {
          id: `${r.id}-value`,
          class: "value",
          value: r.value,
          placeholder: f && f.choices.length ? f.choices.join(", ") : "values, comma-separated",
          "aria-label": `${label}: values (comma-separated)`,
          oninput: ch("value"),
        });
      case "pair":
        return h("span", { class: "value pair" }, one("value", `${label}: from`), h("span", { "aria-hidden": "true" }, "–"), one("value2", `${label}: to`));
      case "days":
        return h("input", { id: `${r.id}-value`, class: "value", type: "number", min: 0, value: r.value, "aria-label": `${label}: days`, oninput: ch("value") });
      case "text":
        return h("input", { id: `${r.id}-value`, class: "value", value: r.value, "aria-label": `${label}: text`, oninput: ch("value") });
      default:
        return h("span", { class: "value" }, one("value", `${label}: value`));
    }
  }
}
