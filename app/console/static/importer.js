// CSV import: pick a file, map its columns (auto-mapped first, as the server would), then
// follow the import job; rejected rows download as a CSV.
import { call } from "./api.js";
import { chips, field, h, select } from "./dom.js";
import { JobCard } from "./jobs.js";
import { pickers } from "./pickers.js";

const FIELDS = [
  "email", "first_name", "last_name", "phone", "company", "city", "country", "birth_date", "sex",
  "score", "state", "email_opt_in", "phone_opt_in", "email_valid", "created_at", "tags", "groups", "owners",
];
const norm = (s) => s.toLowerCase().replace(/[\s_-]/g, "");
const ALIASES = { email: "email", mail: "email" };

// The header a field of ours would take (the server's own rule: ignoring case, spaces, - and _).
export function autoTarget(header) {
  const n = norm(header);
  if (ALIASES[n]) return ALIASES[n];
  return FIELDS.find((f) => norm(f) === n) || "skip";
}

function delimiter(line) {
  const counts = [",", ";", "\t"].map((d) => [d, line.split(d).length]);
  counts.sort((a, b) => b[1] - a[1]);
  return counts[0][0];
}

// The first records of a CSV (RFC 4180 quotes), enough for headers and samples.
export function parseHead(text, rows = 4) {
  text = text.replace(/^\uFEFF/, "");
  const firstLine = text.split(/\r?\n/, 1)[0];
  const d = delimiter(firstLine);
  const out = [];
  let record = [];
  let cell = "";
  let quoted = false;
  for (let i = 0; i < text.length && out.length < rows; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') (cell += '"'), i++;
      else if (c === '"') quoted = false;
      else cell += c;
    } else if (c === '"') quoted = true;
    else if (c === d) record.push(cell), (cell = "");
    else if (c === "\n" || c === "\r") {
      if (c === "\r" && text[i + 1] === "\n") i++;
      record.push(cell);
      out.push(record);
      record = [];
      cell = "";
    } else cell += c;
  }
  if ((cell || record.length) && out.length < rows) out.push([...record, cell]);
  return out;
}

export class ImportPanel {
  constructor(el, { onJob }) {
    this.onJob = onJob;
    this.file = h("input", { id: "import-file", type: "file", accept: ".csv,text/csv,text/plain", onchange: () => this.read() });
    this.mapping = h("div", { class: "mapping", id: "import-mapping" });
    this.tags = [];
    this.update = h("input", { id: "import-update", type: "checkbox", checked: true });
    this.optIn = h("input", { id: "import-optin", type: "checkbox" });
    this.name = h("input", { id: "import-name", placeholder: "e.g. Fair leads" });
    this.error = h("p", { class: "error", id: "import-error", role: "alert" });
    this.jobs = h("div", { class: "job-list", id: "import-jobs" });
    this.submit = h("button", { type: "button", class: "primary", id: "import-submit", disabled: true, onclick: () => this.send() }, "Import");
    el.append(
      h(
        "div",
        { class: "card" },
        h("h2", {}, "Import contacts from CSV"),
        h("p", { class: "hint" }, "UTF-8, with a header row; comma, semicolon or tab. Each row is an upsert by e-mail; a bad row is rejected alone."),
        field("CSV file", this.file),
        this.mapping,
        h(
          "div",
          { class: "import-options" },
          h("div", { class: "field" }, h("span", { class: "label" }, "Tags for every row"), chips({ id: "import-tags", label: "Tags added to every imported contact", values: this.tags, onChange: () => {}, suggest: pickers.tags })),
          h("label", { class: "check", for: "import-update" }, this.update, "update existing contacts"),
          h("label", { class: "check", for: "import-optin" }, this.optIn, "opt-ins may turn on (they never do otherwise)"),
          field("Job name", this.name),
        ),
        h("div", { class: "buttons" }, this.submit),
        this.error,
      ),
      this.jobs,
    );
  }

  async read() {
    this.error.textContent = "";
    const file = this.file.files[0];
    if (!file) return;
    const head = parseHead(await file.slice(0, 256 * 1024).text());
    const [headers = [], ...samples] = head;
    this.columns = headers.map((header, i) => {
      const target = autoTarget(header);
      return { header, target, detail: header, funnel: "", sample: samples.map((r) => r[i] || "").filter(Boolean).slice(0, 2).join(" · ") };
    });
    const funnels = await pickers.funnels().catch(() => []);
    const targets = [
      ["skip", "skip"],
      ...FIELDS.map((f) => [f, f.replaceAll("_", " ")]),
      ["detail", "detail…"],
      ...funnels.map((f) => [`funnel:${f.name}`, `funnel: ${f.name} (stage)`]),
    ];
    this.mapping.replaceChildren(
      h(
        "table",
        { class: "compact", id: "mapping-table" },
        h("caption", {}, "Column mapping (auto-mapped; change any)"),
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "CSV column"), h("th", { scope: "col" }, "Sample"), h("th", { scope: "col" }, "Goes to"))),
        h(
          "tbody",
          {},
          this.columns.map((c, i) => {
            const name = h("input", { id: `map-${i}-detail`, value: c.detail, "aria-label": `Detail name for column ${c.header}`, hidden: c.target !== "detail", oninput: (e) => (c.detail = e.target.value) });
            const target = select(targets, c.target, {
              id: `map-${i}`,
              "aria-label": `Target of column ${c.header}`,
              onchange: (e) => {
                c.target = e.target.value;
                name.hidden = c.target !== "detail";
              },
            });
            return h("tr", {}, h("th", { scope: "row" }, c.header), h("td", { class: "hint" }, c.sample), h("td", {}, target, name));
          }),
        ),
      ),
    );
    this.submit.disabled = !headers.length;
  }

  options() {
    const columns = {};
    for (const c of this.columns) columns[c.header] = c.target === "detail" ? `detail:${c.detail.trim() || c.header}` : c.target;
    const options = { columns, update_existing: this.update.checked, opt_in_may_turn_on: this.optIn.checked };
    if (this.tags.length) options.tags = [...this.tags];
    if (this.name.value.trim()) options.name = this.name.value.trim();
    return options;
  }

  async send() {
    this.error.textContent = "";
    const form = new FormData();
    form.append("file", this.file.files[0]);
    form.append("options", JSON.stringify(this.options()));
    this.submit.disabled = true;
    try {
      const job = await call("POST", "/v1/imports", { form });
      const card = new JobCard(job);
      this.jobs.prepend(card.el);
      this.onJob(job);
    } catch (error) {
      this.error.textContent =
        error.status === 404 || error.status === 405
          ? "This server has no CSV import (POST /v1/imports)."
          : [error.message, ...(error.details || []).filter((d) => d.path && !error.message.startsWith(d.path)).map((d) => `${d.path}: ${d.message}`)].join(" · ");
    } finally {
      this.submit.disabled = false;
    }
  }
}
