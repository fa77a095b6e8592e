import { render } from "@testing-library/react";
import { Markdown } from "./Markdown";

test("Markdown renders formatting but drops raw HTML, handlers and javascript: links", () => {
  const source = [
    "**bold** and [safe](https://example.org) and [evil](javascript:alert(1))",
    "",
    '<img src=x onerror="alert(1)"><script>alert(2)</script>',
    "",
    '<div onmouseover="alert(3)">html block</div>',
    "",
    "![pic](https://example.org/x.png)",
  ].join("\n");
  const { container } = render(<Markdown source={source} />);
  expect(container.querySelector("strong")?.textContent).toBe("bold");
  expect(container.querySelector("a")?.getAttribute("href")).toBe("https://example.org");
  expect(container.querySelectorAll("a")).toHaveLength(1); // the javascript: one is plain text now
  expect(container.textContent).toContain("evil");
  expect(container.querySelector("img, script, div[onmouseover], [onerror]")).toBeNull();
  expect(container.innerHTML).not.toContain("javascript:");
});

test("an answer written as HTML shows its text, escaped, never a blank box", () => {
  const source = '<div class="answer"><p>The capital is <b>Paris</b>.</p></div>\n\nInline <i>tags</i> <script>alert(1)</script> too.';
  const { container } = render(<Markdown source={source} />);
  expect(container.textContent).toContain('<div class="answer"><p>The capital is <b>Paris</b>.</p></div>');
  expect(container.textContent).toContain("Inline <i>tags</i> <script>alert(1)</script> too.");
  expect(container.querySelector("div.answer, p > b, i, script")).toBeNull();
});
