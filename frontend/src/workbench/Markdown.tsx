/**
 * Markdown from model outputs and guidelines, as React elements. Raw HTML in the
 * source is shown as the text it is (escaped by React, never parsed): an answer
 * written as HTML must not look empty to the annotator judging it. react-markdown's
 * URL transform drops javascript: and other unsafe schemes, and rehype-sanitize (the
 * GitHub schema) is a second wall. Images are not fetched (no remote content).
 */
import ReactMarkdown from "react-markdown";
import rehypeSanitize from "rehype-sanitize";

type MdNode = { type: string; value?: string; children?: MdNode[] };

/** remark plugin: every raw-HTML node of the Markdown tree becomes a text node with the same characters. */
function rawHtmlAsText() {
  const walk = (node: MdNode) => {
    if (node.type === "html") node.type = "text";
    node.children?.forEach(walk);
  };
  return walk;
}

export function Markdown({ source }: { source: string }) {
  return (
    <div className="markdown">
      <ReactMarkdown
        remarkPlugins={[rawHtmlAsText]}
        skipHtml
        rehypePlugins={[rehypeSanitize]}
        disallowedElements={["img"]}
        unwrapDisallowed
        components={{
          // An unsafe URL arrives here emptied by the URL transform: show the text, no link.
          a: ({ href, children }) =>
            href ? (
              <a href={href} rel="noopener noreferrer nofollow" target="_blank">
                {children}
              </a>
            ) : (
              <span className="dead-link">{children}</span>
            ),
        }}
      >
        {source}
      </ReactMarkdown>
    </div>
  );
}
