/** Overview (placeholder until the page lands). */
export default function Overview() {
  return (
    <section aria-labelledby="overview-title">
      <h1 id="overview-title">Overview</h1>
    </section>
  );
}
