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
