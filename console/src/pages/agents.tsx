/** Agents (placeholder until the page lands). */
export default function Agents() {
  return (
    <section aria-labelledby="agents-title">
      <h1 id="agents-title">Agents</h1>
    </section>
  );
}
