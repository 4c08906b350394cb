// Markdown to DOM nodes, for model answers. Written by hand because the page takes no npm
// build or CDN, and because it never parses HTML: every piece of the model's text becomes a
// text node, so no markup or script from a model reaches the page. Covers what chat answers
// use: headings, paragraphs, fenced code, lists, quotes, rules, **bold**, *italic*, `code`
// and http(s) links.

function inline(text) {
  const out = [];
  const pattern = /(`[^`]+`)|(\*\*[^*]+\*\*)|(\*[^*\s][^*]*\*)|(\[[^\]]+\]\((https?:\/\/[^)\s]+)\))/g;
  let last = 0;
  let m;
  while ((m = pattern.exec(text))) {
    if (m.index > last) out.push(document.createTextNode(text.slice(last, m.index)));
    let node;
    if (m[1]) {
      node = document.createElement("code");
      node.textContent = m[1].slice(1, -1);
    } else if (m[2]) {
      node = document.createElement("strong");
      node.append(...inline(m[2].slice(2, -2)));
    } else if (m[3]) {
      node = document.createElement("em");
      node.append(...inline(m[3].slice(1, -1)));
    } else {
      node = document.createElement("a");
      node.href = m[5];
      node.rel = "noopener noreferrer nofollow";
      node.target = "_blank";
      node.textContent = m[4].slice(1, m[4].indexOf("]"));
    }
    out.push(node);
    last = pattern.lastIndex;
  }
  if (last < text.length) out.push(document.createTextNode(text.slice(last)));
  return out;
}

/** The nodes of `text` rendered as Markdown. */
export function render(text) {
  const lines = text.replace(/\r\n/g, "\n").split("\n");
  const out = [];
  let i = 0;
  const para = [];
  const flush = () => {
    if (!para.length) return;
    const p = document.createElement("p");
    para.forEach((line, k) => {
      if (k) p.append(document.createElement("br"));
      p.append(...inline(line));
    });
    out.push(p);
    para.length = 0;
  };
  while (i < lines.length) {
    const line = lines[i];
    const fence = line.match(/^\s*```(\S*)/);
    if (fence) {
      flush();
      const code = [];
      i++;
      while (i < lines.length && !/^\s*```/.test(lines[i])) code.push(lines[i++]);
      i++;
      const pre = document.createElement("pre");
      const c = document.createElement("code");
      if (fence[1]) c.dataset.lang = fence[1];
      c.textContent = code.join("\n");
      pre.append(c);
      out.push(pre);
      continue;
    }
    const heading = line.match(/^(#{1,6})\s+(.*)$/);
    if (heading) {
      flush();
      const hn = document.createElement(`h${Math.min(6, heading[1].length + 2)}`);
      hn.append(...inline(heading[2]));
      out.push(hn);
      i++;
      continue;
    }
    if (/^\s*(-{3,}|\*{3,}|_{3,})\s*$/.test(line)) {
      flush();
      out.push(document.createElement("hr"));
      i++;
      continue;
    }
    const item = line.match(/^\s*([-*+]|\d+[.)])\s+(.*)$/);
    if (item) {
      flush();
      const ordered = /\d/.test(item[1]);
      const list = document.createElement(ordered ? "ol" : "ul");
      while (i < lines.length) {
        const m = lines[i].match(/^\s*([-*+]|\d+[.)])\s+(.*)$/);
        if (!m || /\d/.test(m[1]) !== ordered) break;
        const li = document.createElement("li");
        li.append(...inline(m[2]));
        list.append(li);
        i++;
      }
      out.push(list);
      continue;
    }
    if (/^\s*>/.test(line)) {
      flush();
      const quote = document.createElement("blockquote");
      const body = [];
      while (i < lines.length && /^\s*>/.test(lines[i])) body.push(lines[i++].replace(/^\s*>\s?/, ""));
      quote.append(...render(body.join("\n")));
      out.push(quote);
      continue;
    }
    if (!line.trim()) flush();
    else para.push(line);
    i++;
  }
  flush();
  return out;
}
